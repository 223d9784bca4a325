"""The scanner's hand-off to the payments side through the real broker: a `manage.py scan` process records a
payment made on anvil and, after its commit, sends `payments.tasks.process_address_activity` by name to Redis; a
real `celery -A gateway worker` process receives it from Redis and applies the transfer. Nothing in the test applies
anything, no beat runs, CELERY_TASK_ALWAYS_EAGER is off: the intent succeeds only if the message went through Redis
under a name the worker knows. The same run with the scanner's broker on a dead port leaves the transfer queued and
the intent untouched (no in-process fallback), until a later scan's message reaches the worker."""
import sys

import pytest
from django.conf import settings

from gateway.celery import app as celery_app
from payments.models import Charge, PaymentIntent
from payments.services import PaymentIntentInput, payment_intent_create
from tests.chain import register_devnet_for_tests
from tests.processes import Processes, process_env, token_send, wait_until
from wallets.chain.scanner import PAYMENTS_ACTIVITY_TASK, log_ranges_forget
from wallets.devchain import rpc
from wallets.models import AddressActivity

TOKEN = 10**18  # the test tokens have 18 decimals: 1.00 USD
DEAD_BROKER = "redis://127.0.0.1:111/0"


@pytest.fixture
def network(anvil_chain, transactional_db, networks, wallet):
    log_ranges_forget()
    yield register_devnet_for_tests(anvil_chain)
    log_ranges_forget()


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.stop_all()


def intent_paid_on_chain(chain, merchant) -> tuple[PaymentIntent, int]:
    """An intent of 10.00 USD, paid in full in USDT; returns it and the block of the payment."""
    intent = payment_intent_create(merchant=merchant, livemode=False,
                                   data=PaymentIntentInput(amount=1000, currency="usd", networks=["bsc"]))
    receipt = token_send(chain.rpc_url, token=chain.tokens["usdt"], sender=chain.accounts[1],
                         to=intent.deposit_address.address, amount=10 * TOKEN)
    return intent, int(receipt["blockNumber"], 16)


def status(intent) -> str:
    return PaymentIntent.objects.values_list("status", flat=True).get(pk=intent.pk)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_payment_goes_from_the_scanner_through_redis_to_a_celery_worker(anvil_chain, network, merchant, processes):
    broker = settings.CACHES["default"]["LOCATION"]  # this run's Redis (REDIS_URL)
    env = process_env(**{network.rpc_env: anvil_chain.rpc_url, "CELERY_TASK_ALWAYS_EAGER": "0",
                         "CELERY_BROKER_URL": broker})
    # Given a real worker on the default queue, fed by Redis
    worker, worker_log = processes.start(
        [sys.executable, "-m", "celery", "-A", "gateway", "worker", "-Q", "default", "--pool", "solo", "-l", "info",
         "--without-gossip", "--without-mingle", "--without-heartbeat"], env=env, name="worker")

    # When an intent is paid on chain and a scanner whose broker is dead records it (final: 3 blocks on top)
    late, first_block = intent_paid_on_chain(anvil_chain, merchant)
    rpc(anvil_chain.rpc_url, "anvil_mine", ["0x3"])
    scan, scan_log = processes.manage("scan", "--chain", "devnet", "--from-block", str(first_block),
                                      env={**env, "CELERY_BROKER_URL": DEAD_BROKER})
    processes.wait_for_line(worker, worker_log, "ready.")
    assert scan.wait(timeout=120) == 0, scan_log.read_text()
    # Then the transfer is recorded and queued, the message could not be sent, and nothing applied it
    assert f"could not send {PAYMENTS_ACTIVITY_TASK}" in scan_log.read_text()
    assert AddressActivity.objects.filter(deposit_address_id=late.deposit_address_id).exists()
    assert status(late) == "requires_action" and not Charge.objects.exists()

    # When another intent is paid and a scanner with the real broker records it
    intent, block = intent_paid_on_chain(anvil_chain, merchant)
    rpc(anvil_chain.rpc_url, "anvil_mine", ["0x3"])
    scan, scan_log = processes.manage("scan", "--chain", "devnet", "--from-block", str(block), env=env)
    assert scan.wait(timeout=120) == 0, scan_log.read_text()

    # Then the worker receives the task from Redis and both intents succeed (the task drains the whole queue)
    wait_until(lambda: status(intent) == "succeeded" and status(late) == "succeeded", timeout=90,
               what="the worker to apply the payments", interval=0.2)
    assert Charge.objects.filter(payment_intent__in=[intent, late], status="succeeded").count() == 2
    assert not AddressActivity.objects.exists()
    log = worker_log.read_text()
    assert f"Task {PAYMENTS_ACTIVITY_TASK}[" in log and " received" in log
    assert "unregistered task" not in log.lower()
    assert Processes.stop(worker) == 0


def test_every_task_sent_by_name_is_registered_with_the_worker_app():
    """The names the scanner and beat send are tasks the worker knows (a renamed task fails here at once, and in the
    end-to-end test above through the broker)."""
    celery_app.loader.import_default_modules()
    sent = {PAYMENTS_ACTIVITY_TASK} | {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert sent - set(celery_app.tasks) == set()
    assert set(settings.CELERY_TASK_ROUTES) - set(celery_app.tasks) == set()
