"""Structured logs (gateway/logs.py, docs/operations.md#logs): JSON lines with the process role and the request id,
which every request gets (API, portal, checkout, admin) and which travels with the Celery tasks a request sends
into the worker's log lines (real broker, real worker process), onto the events and audit records it writes, and
from an event to the sender's lines about its webhook deliveries. A full run logged at DEBUG (web, worker, sender)
holds none of the secrets made along the way."""
import base64
import io
import json
import logging
import sys
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.test import Client, override_settings

from audit.models import AuditRecord
from audit.services import audit_record
from gateway.logs import ContextFilter, JsonFormatter, log_context
from merchants import services as merchant_services
from merchants.models import EncryptedTotpDevice
from payments.events import build_event
from payments.models import Event, PaymentIntent
from tests.chain import anvil_chain, register_devnet_for_tests  # noqa: F401 (fixture)
from tests.conftest import FormClient
from tests.otp import totp_code
from tests.payments.conftest import create, mined, simulate  # noqa: F401
from tests.payments.webhooks.conftest import receiver  # noqa: F401 (fixture)
from tests.processes import Processes, process_env, wait_until
from tests.settlements.payout_fixtures import create_payout, funded, usable_address
from wallets.chain.scanner import log_ranges_forget, scan_step
from wallets.devchain import rpc
from wallets.networks import clear_network_cache
from wallets.services import wallet_mnemonic_reveal

PASSWORD = "a long portal password 4 logs"


@contextmanager
def captured(level=logging.DEBUG, stream=None):
    """The in-process (web) log lines, as the console handler of settings.LOGGING writes them."""
    stream = stream or io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def json_lines(text: str) -> list[dict]:
    """Every line parsed (a line that is not JSON fails here), but Celery's console notice at a stop ("worker: Warm
    shutdown (MainProcess)", written to the terminal, not logged)."""
    return [json.loads(line) for line in text.splitlines() if line.strip() and not line.startswith("worker: ")]


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.stop_all()


# --- the format -------------------------------------------------------------------------------------------------

def test_a_log_line_is_one_json_object_with_its_fields_and_context():
    with captured() as stream:
        logger = logging.getLogger("gateway.test")
        with log_context(request_id="req_abc", event_id="evt_def"):
            logger.info("paid %s", "pi_1", extra={"amount_minor": 1234})
        logger.warning("outside")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    first, second, third = json_lines(stream.getvalue())
    assert list(first)[:4] == ["timestamp", "level", "logger", "message"]
    assert (first["level"], first["logger"], first["message"]) == ("INFO", "gateway.test", "paid pi_1")
    assert first["role"]  # "web" here, unless an earlier test ran a command in this process (`watch`: "watcher")
    assert (first["request_id"], first["event_id"], first["amount_minor"]) == ("req_abc", "evt_def", 1234)
    assert first["timestamp"].endswith("+00:00")
    assert "request_id" not in second and "task_id" not in second  # empty context fields are left out
    assert third["level"] == "ERROR" and "ValueError: boom" in third["exc_info"]


def test_the_settings_log_json_lines_with_the_context_filter():
    console = settings.LOGGING["handlers"]["console"]
    assert console["formatter"] == settings.GATEWAY_LOG_FORMAT == "json"
    assert console["filters"] == ["context"]
    assert settings.LOGGING["loggers"]["django.db.backends"]["level"] == "WARNING"  # SQL parameters: never


# --- the request id -------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_every_request_gets_an_id_in_its_header_and_its_log_lines(api):
    with captured(logging.INFO) as stream:
        missing = api.get("/v1/payment_intents/pi_" + "0" * 24)
        portal = Client().get("/portal/nowhere/")
        admin = Client().get("/admin/login/")
        checkout = Client().get("/pay/cs_nothing")
    ids = [r["Request-Id"] for r in (missing, portal, admin, checkout)]
    assert all(i.startswith("req_") for i in ids) and len(set(ids)) == 4
    lines = json_lines(stream.getvalue())
    assert {"Not Found: /v1/payment_intents/pi_" + "0" * 24, "Not Found: /portal/nowhere/"} <= \
        {line["message"] for line in lines}
    by_message = {line["message"]: line for line in lines}
    assert by_message["Not Found: /v1/payment_intents/pi_" + "0" * 24]["request_id"] == ids[0]
    assert by_message["Not Found: /portal/nowhere/"]["request_id"] == ids[1]


@pytest.mark.django_db
def test_events_and_audit_records_written_for_a_request_carry_its_id(merchant):
    with log_context(request_id="req_fromtheportal"):
        event = build_event(merchant=merchant, livemode=False, type="payment_intent.canceled", obj_id="pi_x",
                            snapshot={}, sequence=1)
        named = build_event(merchant=merchant, livemode=False, type="payment_intent.canceled", obj_id="pi_y",
                            snapshot={}, sequence=1, request_id="req_givenbythecaller")
        from django.db import transaction
        with transaction.atomic():
            record = audit_record(action="test.logs", obj=merchant)
    automatic = build_event(merchant=merchant, livemode=False, type="payment_intent.canceled", obj_id="pi_z",
                            snapshot={}, sequence=1)
    assert event.request_id == "req_fromtheportal" and named.request_id == "req_givenbythecaller"
    assert automatic.request_id == ""  # the watcher, beat: Stripe's `request.id: null`
    assert AuditRecord.objects.get(pk=record.pk).request_id == "req_fromtheportal"


def test_an_eager_task_keeps_its_callers_request_id():
    from celery import shared_task

    seen = {}

    @shared_task(name="tests.logs.eager_probe")
    def probe():
        from gateway import logs
        seen.update(request_id=logs.current_request_id(), task_name=logs.task_name_var.get())

    with override_settings(CELERY_TASK_ALWAYS_EAGER=True), log_context(request_id="req_eager"):
        probe.apply()
    assert seen == {"request_id": "req_eager", "task_name": "tests.logs.eager_probe"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_request_id_of_an_api_call_is_in_the_worker_log_lines_of_the_task_it_sent(
        transactional_db, networks, wallet, merchant, api, processes):
    # Given a real worker on the default queue, fed by this run's Redis, logging JSON at INFO
    env = process_env(CELERY_TASK_ALWAYS_EAGER="0", CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
                      LOG_LEVEL="INFO")
    worker, worker_log = processes.start(
        [sys.executable, "-m", "celery", "-A", "gateway", "--quiet", "worker", "-Q", "default", "--pool", "solo", "-l", "info",
         "--without-gossip", "--without-mingle", "--without-heartbeat"], env=env, name="worker")
    funded(merchant)
    usable_address(merchant)
    processes.wait_for_line(worker, worker_log, "ready.")

    # When the API creates a payout (which sends `advance_payouts` after its commit)
    response = create_payout(api, 500)
    assert response.status_code == 200, response.json()
    request_id = response["Request-Id"]

    # Then the worker's lines of that task carry the request id, with the task's id and name
    def task_lines():
        return [line for line in json_lines(worker_log.read_text())
                if line.get("task_name") == "settlements.tasks.advance_payouts"
                and line.get("request_id") == request_id]

    lines = wait_until(task_lines, timeout=120, what="the worker's line of advance_payouts", interval=0.2)
    assert all(line["role"] == "worker" and line["task_id"] for line in lines)
    assert any(line["message"].startswith("Task settlements.tasks.advance_payouts[") for line in lines)
    # ... and the payout's event and audit record carry the same id (Stripe's event `request.id`)
    payout_id = response.json()["id"]
    assert Event.objects.get(object_id=payout_id, type="payout.created").request_id == request_id
    assert AuditRecord.objects.get(object_id=payout_id, action="payout.create").request_id == request_id
    assert Processes.stop(worker) == 0
    assert json_lines(worker_log.read_text())  # every line of the worker is JSON


# --- no secret in the logs of a full run --------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_full_run_logged_at_debug_holds_no_secret(transactional_db, anvil_chain, networks, wallet, receiver,
                                                    processes, tmp_path):
    log_ranges_forget()
    network = register_devnet_for_tests(anvil_chain)
    clear_network_cache()
    env = process_env(**{network.rpc_env: anvil_chain.rpc_url, "CELERY_TASK_ALWAYS_EAGER": "0",
                         "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, "LOG_LEVEL": "DEBUG"})
    worker, worker_log = processes.start(
        [sys.executable, "-m", "celery", "-A", "gateway", "--quiet", "worker", "-Q", "default", "--pool", "solo", "-l", "debug",
         "--without-gossip", "--without-mingle", "--without-heartbeat"], env=env, name="worker")
    sender, sender_log = processes.manage("deliver_webhooks", "--poll", "0.2", env=env)
    web_log = tmp_path / "web.log"
    secrets = {}
    with web_log.open("w") as stream, captured(logging.DEBUG, stream), \
            override_settings(GATEWAY_DEVCHAIN_RPC_URL=anvil_chain.rpc_url):
        for _ in range(50):  # the scanner's cursor to the head
            if scan_step(network=network).caught_up:
                break
        # A merchant signs in for the first time and enrols TOTP (the seed is shown), then makes a test key
        shop = merchant_services.merchant_create(email="logs@example.com", name="Logs", password=PASSWORD)
        portal = Client()
        portal.post("/portal/login/", {"username": "logs@example.com", "password": PASSWORD, "otp_token": ""})
        assert portal.get("/portal/two-factor/").status_code == 200
        device = EncryptedTotpDevice.objects.get(user=shop.user)
        secrets["totp seed"] = base64.b32encode(device.bin_key).decode()
        secrets["totp seed hex"] = device.bin_key.hex()
        assert portal.post("/portal/two-factor/", {"token": totp_code(device)}).status_code == 302
        created = portal.post("/portal/keys/", {"kind": "secret", "mode": "test", "name": "shop"})
        secrets["secret key"] = created.context["raw"]
        api = FormClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {secrets['secret key']}")

        # A webhook endpoint (its whsec_ shown once), an intent paid on anvil, delivered and signed
        endpoint = api.post("/v1/webhook_endpoints", {"url": receiver.on("/ok"), "enabled_events[]": "*"}).json()
        secrets["webhook secret"] = endpoint["secret"]
        intent = create(api)
        secrets["client secret"] = intent["client_secret"]
        assert simulate(api, intent["id"]).status_code == 200
        rpc(anvil_chain.rpc_url, "anvil_mine", ["0x3"])
        for _ in range(50):
            if scan_step(network=network).caught_up:
                break
        wait_until(lambda: PaymentIntent.objects.filter(pk=intent["id"], status="succeeded").exists(), timeout=120,
                   what="the worker to apply the payment", interval=0.2)
        wait_until(lambda: any(r.event["type"] == "payment_intent.succeeded" for r in receiver.at("/ok")),
                   timeout=120, what="the sender to deliver payment_intent.succeeded", interval=0.2)
        assert secrets["webhook secret"].encode() not in receiver.at("/ok")[0].body

        # The key and the endpoint's secret are rolled
        rolled = portal.post(f"/portal/keys/{created.context['key'].id}/roll", {"expires_in_hours": "0"})
        secrets["rolled secret key"] = rolled.context["raw"]
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {secrets['rolled secret key']}")
        again = api.post(f"/v1/webhook_endpoints/{endpoint['id']}/roll_secret", {})
        assert again.status_code == 200, again.json()
        secrets["rolled webhook secret"] = again.json()["secret"]
        secrets["mnemonic"] = wallet_mnemonic_reveal()
    assert Processes.stop(worker) == 0 and Processes.stop(sender) == 0
    secrets["KEK"] = settings.GATEWAY_KEK
    secrets["secrets KEK"] = settings.GATEWAY_SECRETS_KEK
    secrets["password"] = PASSWORD

    # Then each process logged (JSON lines, at DEBUG), and no secret is in any of their logs
    logs = {"web": web_log.read_text(), "worker": worker_log.read_text(), "sender": sender_log.read_text()}
    web, work = json_lines(logs["web"]), json_lines(logs["worker"])
    assert any(line["level"] == "DEBUG" for line in web) and any(line.get("request_id") for line in web)
    assert any(line.get("task_name") == "payments.tasks.process_address_activity" for line in work)
    sent = [json.loads(line) for line in logs["sender"].splitlines() if line.startswith('{"timestamp"')]
    succeeded = Event.objects.get(object_id=intent["id"], type="payment_intent.succeeded")
    assert any(line.get("event_id") == succeeded.id and line["role"] == "sender" for line in sent)
    created_event = Event.objects.get(object_id=intent["id"], type="payment_intent.created")
    assert created_event.request_id and any(
        line.get("event_id") == created_event.id and line.get("request_id") == created_event.request_id
        for line in sent)  # the request that created the intent, carried through the event to its delivery
    for name, secret in secrets.items():
        assert secret and len(secret) >= 16, name
        for process, text in logs.items():
            assert secret not in text, f"the {name} is in the {process} log"
            body = secret.split("_")[-1]  # without its sk_test_ / whsec_ / pi_..._secret_ prefix
            assert len(body) < 12 or body not in text, f"the {name} (without prefix) is in the {process} log"
