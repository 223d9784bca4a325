"""/healthz and /readyz in the test process, against the real PostgreSQL, Redis and anvil (the readiness checks
open connections of their own, so the tests that need rows use a transactional database). The same probes against
a served gateway whose PostgreSQL, Redis and RPC node go away: test_readyz_processes.py."""
import pytest
from django.test import Client

from payments.models import Event
from tests.chain import free_port
from tests.faultproxy import FaultProxy
from tests.payments.conftest import settle
from wallets.devchain import rpc


@pytest.fixture
def web():
    return Client()


def test_healthz_answers_without_touching_the_database(web):
    # Given no database access for this test (pytest-django refuses any query)
    # when the liveness probe is asked
    response = web.get("/healthz")
    # then the process says it is up
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_probes_answer_only_get(web):
    assert web.post("/healthz").status_code == 405


def test_readyz_is_ready_when_every_dependency_answers(web, devnet, anvil_chain):
    # Given the devnet scanned up to its head
    settle(devnet, anvil_chain)
    # when the readiness probe is asked
    response = web.get("/readyz")
    # then every check passes, and the answer names no URL
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"] == {"ok": True}
    chain = body["checks"]["chains"]["devnet"]
    assert chain["ok"] and chain["lag_blocks"] == 0 and chain["head"] == chain["cursor"]
    assert body["checks"]["webhook_backlog"] == {"ok": True, "due": 0, "max": 1000}
    # networks without an RPC URL are listed, not checked (the scanner skips them too)
    assert body["checks"]["chains"]["ethereum"] == {"ok": True, "configured": False}
    assert str(anvil_chain.port) not in response.content.decode() and "http" not in response.content.decode()


def test_readyz_fails_when_the_rpc_node_is_down_or_hangs(web, devnet, anvil_chain, settings):
    settle(devnet, anvil_chain)
    # Given the devnet's RPC URL pointing at a port nobody listens on
    settings.GATEWAY_DEVCHAIN_RPC_URL = f"http://127.0.0.1:{free_port()}"
    # then the probe says unavailable, naming the chain and why
    response = web.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["chains"]["devnet"] == {"ok": False, "reason": "unreachable"}
    assert response.json()["checks"]["database"]["ok"]
    # Given a node that accepts the request and answers only after 5 s
    with FaultProxy(anvil_chain.rpc_url, mode="delay", delay=5.0) as proxy:
        settings.GATEWAY_DEVCHAIN_RPC_URL = proxy.url
        response = web.get("/readyz")
    # then the probe does not wait for it
    assert response.status_code == 503
    assert response.json()["checks"]["chains"]["devnet"]["ok"] is False
    assert response.json()["checks"]["chains"]["devnet"]["reason"] in ("timeout", "unreachable")


def test_readyz_fails_while_the_scanner_lags_and_recovers_once_it_caught_up(web, devnet, anvil_chain,
                                                                             settings):
    settle(devnet, anvil_chain)
    settings.GATEWAY_READYZ_MAX_SCANNER_LAG_SECONDS = 5 * devnet.block_time_ms / 1000
    # Given the node 10 blocks ahead of the scanner
    rpc(anvil_chain.rpc_url, "anvil_mine", [hex(10)])
    response = web.get("/readyz")
    # then the chain is lagging
    chain = response.json()["checks"]["chains"]["devnet"]
    assert response.status_code == 503 and chain["reason"] == "lagging" and chain["lag_blocks"] == 10
    # and once the scanner caught up, ready again
    settle(devnet, anvil_chain)
    assert web.get("/readyz").status_code == 200


def test_readyz_fails_when_the_webhook_backlog_is_over_its_bound(web, devnet, anvil_chain, merchant,
                                                                 settings):
    settle(devnet, anvil_chain)
    settings.GATEWAY_READYZ_MAX_WEBHOOK_BACKLOG = 1
    # Given two events not fanned out to webhook endpoints yet
    for sequence in (1, 2):
        Event.objects.create(merchant=merchant, livemode=False, type="payment_intent.created", object_id="pi_x",
                             sequence=sequence, data={})
    # then the backlog is over its bound
    response = web.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["webhook_backlog"] == {"ok": False, "reason": "over_bound", "due": 2, "max": 1}
    # and within it once the bound allows it
    settings.GATEWAY_READYZ_MAX_WEBHOOK_BACKLOG = 2
    assert web.get("/readyz").status_code == 200
