"""/metrics: who may read it, and the business metrics moving as a payment goes through on the real chain (parsed
with prometheus-client's own text parser, as Prometheus reads it)."""
import re
from pathlib import Path

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.chain import free_port
from tests.payments.conftest import create, settle, simulate
from wallets.chain.rpc import RpcClient, RpcUnavailable


def scrape(client: Client) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name, **labels) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


@pytest.fixture
def web():
    return Client()


def test_metrics_refuse_other_addresses_unless_they_carry_the_token(web, db, settings):
    # Given the default allow-list (this machine only) and no token
    assert web.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    # a relay by our own proxy is judged by the client it relays, not by the proxy's 127.0.0.1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert web.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    # When a token is set, a scraper from elsewhere gets in with it, and only with it
    settings.GATEWAY_METRICS_TOKEN = "scrape-secret-123"
    assert web.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert web.get("/metrics", REMOTE_ADDR="10.1.2.3",
                   HTTP_AUTHORIZATION="Bearer scrape-secret-123").status_code == 200
    # and an allowed network works without it
    settings.GATEWAY_METRICS_ALLOW_IPS = ["10.0.0.0/8"]
    assert web.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_business_metrics_move_as_a_payment_goes_through(web, api, devnet, anvil_chain):
    settle(devnet, anvil_chain)
    before = scrape(web)
    assert value(before, "gateway_metrics_database_up") == 1
    assert value(before, "gateway_chain_lag_blocks", network="devnet", livemode="false") == 0

    # When an intent is created: one more waiting for its deposit
    intent = create(api, amount=1_250_000)  # $12,500.00: above the seed's $10,000 alert threshold
    created = scrape(web)
    assert value(created, "gateway_payment_intents", status="requires_action") == \
        value(before, "gateway_payment_intents", status="requires_action") + 1
    assert total(created, "gateway_http_requests_total", surface="api", code="2xx") > \
        total(before, "gateway_http_requests_total", surface="api", code="2xx")

    # When its deposit is seen in a block (not final yet): processing, its time from the block observed
    assert simulate(api, intent["id"]).status_code == 200
    settle(devnet, anvil_chain)
    seen = scrape(web)
    assert value(seen, "gateway_payment_intents", status="processing") == \
        value(before, "gateway_payment_intents", status="processing") + 1
    assert value(seen, "gateway_payment_intents", status="requires_action") == \
        value(before, "gateway_payment_intents", status="requires_action")
    assert value(seen, "gateway_payment_block_to_status_seconds_count", network="devnet", status="processing") == \
        value(before, "gateway_payment_block_to_status_seconds_count", network="devnet", status="processing") + 1
    assert total(seen, "gateway_rpc_calls_total", network="devnet") > total(before, "gateway_rpc_calls_total",
                                                                             network="devnet")

    # When its block is final: succeeded, counted, timed, and its amount in the bucket above $10,000
    settle(devnet, anvil_chain, mine_blocks=2)
    paid = scrape(web)
    assert value(paid, "gateway_payment_intents", status="processing") == \
        value(before, "gateway_payment_intents", status="processing")
    assert value(paid, "gateway_payment_intent_transitions_total", status="succeeded") == \
        value(before, "gateway_payment_intent_transitions_total", status="succeeded") + 1
    assert value(paid, "gateway_payment_block_to_status_seconds_count", network="devnet", status="succeeded") == \
        value(before, "gateway_payment_block_to_status_seconds_count", network="devnet", status="succeeded") + 1

    def above_10k(samples):
        return (value(samples, "gateway_payment_succeeded_amount_count", currency="usd")
                - value(samples, "gateway_payment_succeeded_amount_bucket", currency="usd", le="10000.0"))
    assert above_10k(paid) == above_10k(before) + 1
    # the scanner's gauges, the queues and the backlog are there for every scrape
    assert value(paid, "gateway_chain_cursor_block", network="devnet", livemode="false") == \
        value(paid, "gateway_chain_head_block", network="devnet", livemode="false")
    assert ("gateway_queue_rows", (("queue", "address_activity"),)) in paid
    assert ("gateway_webhook_backlog", (("kind", "due"),)) in paid
    assert ("gateway_celery_queue_length", (("queue", "default"),)) in paid


def test_rpc_errors_are_counted_per_endpoint_without_its_secrets(db):
    # Given an endpoint whose URL carries a key, on a port nobody listens on
    url = f"http://127.0.0.1:{free_port()}/v3/SECRETKEY123"
    client = RpcClient([url], name="metrics-test", timeout=0.5, retry_budget=0.0, max_attempts=1)
    # when a call fails
    with pytest.raises(RpcUnavailable):
        client.call("eth_blockNumber")
    # then the error is counted under the masked endpoint, and the key shows nowhere
    body = Client().get("/metrics").content.decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body) for s in f.samples}
    errors = [v for (n, ls), v in samples.items()
              if n == "gateway_rpc_errors_total" and ("network", "metrics-test") in ls]
    assert errors == [1.0]
    assert "SECRETKEY123" not in body


def test_every_metric_the_example_alert_rules_use_is_exported(web, db):
    # Given the example rules (ops/prometheus/alerts.yml) and one scrape
    rules = yaml.safe_load((Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    families = {f.name for f in text_string_to_metric_families(web.get("/metrics").content.decode())}
    # then every gateway_ metric they name is one the gateway exports (a sample of it, or its family)
    used = {name for expr in exprs for name in re.findall(r"\bgateway_[a-z_]+", expr)}
    missing = {name for name in used
               if name not in families and re.sub(r"_(total|bucket|count|sum)$", "", name) not in families}
    assert len(used) > 10 and not missing, missing
