"""The production topology on one machine (issue 13, item 8's proof; docs/operations.md "Processes"): two web processes
(scripts/serve.sh, granian), three Celery workers (`default`, `chain,webhooks`, `signer`) fed by Redis, two chain
watchers for the same chain (the per-chain advisory lock lets one scan at a time) and two webhook senders, all real
processes against this test's PostgreSQL, Redis and an anvil of the module's own (it is reorged). No beat: the
event-driven paths alone must carry a payment (the scanner's task message, the ledger's after-commit message,
the senders' LISTEN/NOTIFY); beat is only their fallback.

Driven like the payments tests, but through the web processes over HTTP: intents created and paid (the test helper
really sends the deposit) through both web processes, one payment reorged away before finality and paid again, every
event posted to a local receiver. Then: each transfer recorded once (two watchers), each intent succeeded once, each
Charge credited to the ledger once, each event delivered at least once, and the signer worker answers check_live's
ping."""
import json
import sys
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connection

from monitoring.live import check_signer
from payments.models import Charge, ChargeLedgerOutbox, Event, PaymentIntent
from settlements.models import JournalTransaction
from tests.chain import free_port, running_anvil
from tests.payments.webhooks.conftest import make_endpoint, receiver  # noqa: F401 (fixtures)
from tests.processes import Processes, process_env, wait_until
from wallets.chain.scanner import LOCK_CLASS
from wallets.devchain import rpc
from wallets.models import Transfer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

INTENTS = 4
WORKER = [sys.executable, "-m", "celery", "-A", "gateway", "worker", "--pool", "solo", "-l", "info",
          "--without-gossip", "--without-mingle", "--without-heartbeat"]


@pytest.fixture(scope="module")
def devnet_chain():
    """This module's own chain: its history is rewritten (a reorg)."""
    with running_anvil() as chain:
        yield chain


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.stop_all()


def call(port: int, key: str, method: str, path: str, data: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=urlencode(data).encode() if data is not None else None,
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{method} {path}: {error.code} {error.read()[:500]!r}") from None


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def status_of(intent_id: str) -> str:
    return PaymentIntent.objects.values_list("status", flat=True).get(id=intent_id)


def scan_locks_held(network) -> int:
    """Sessions holding the scanner's advisory lock of `network` right now (a step in progress)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                       "AND classid = %s AND objid = %s", [LOCK_CLASS, network.id])
        return cursor.fetchone()[0]


def test_two_webs_three_workers_two_watchers_two_senders(devnet, devnet_chain, secret_key, receiver,  # noqa: F811
                                                         make_endpoint, processes):
    chain = devnet_chain
    endpoint = make_endpoint(receiver.on("/ok"))
    env = process_env(GATEWAY_DEVCHAIN_RPC_URL=chain.rpc_url, CELERY_TASK_ALWAYS_EAGER="0",
                      CELERY_BROKER_URL=settings.CACHES["default"]["LOCATION"])
    # Given the processes of a production machine, started together
    webs = []
    for _ in range(2):
        port = free_port()
        process, log = processes.start(["bash", "scripts/serve.sh"], name="web", env={
            **env, "GATEWAY_WEB_PORT": str(port), "GATEWAY_WEB_WORKERS": "1", "GATEWAY_WEB_THREADS": "2"})
        webs.append((port, process, log))
    workers = [processes.start([*WORKER, "-Q", queues, "-n", f"{name}@%h"], env=env, name=name)
               for name, queues in (("default", "default"), ("chain", "chain,webhooks"), ("signer", "signer"))]
    watchers = [processes.manage("watch", "--chain", "devnet", env=env) for _ in range(2)]
    senders = [processes.manage("deliver_webhooks", "--poll", "0.2", env=env) for _ in range(2)]
    for process, log in workers:
        processes.wait_for_line(process, log, "ready.", timeout=180)
    for process, log in watchers:
        processes.wait_for_line(process, log, "watching devnet", timeout=180)
    for process, log in senders:
        processes.wait_for_line(process, log, "delivering webhooks", timeout=180)
    for port, process, log in webs:
        wait_until(lambda: process.poll() is None and healthy(port), timeout=180, what=f"web on {port}",
                   interval=0.2)
    ports = [port for port, _, _ in webs]

    def all_running():
        for process, log in [*workers, *watchers, *senders, *((p, lg) for _, p, lg in webs)]:
            assert process.poll() is None, f"{log.name} exited:\n{log.read_text()[-3000:]}"

    locks_seen = []

    def until(predicate, what: str, *, mine: bool = False, timeout: float = 120):
        def check():
            all_running()
            locks_seen.append(scan_locks_held(devnet))
            if mine:
                rpc(chain.rpc_url, "anvil_mine", ["0x1"])
            return predicate()
        return wait_until(check, timeout=timeout, what=what, interval=0.3)

    # When intents are created and paid through both web processes
    intents = [call(ports[i % 2], secret_key, "POST", "/v1/payment_intents", {
        "amount": 1000 + i, "currency": "usd",
        "payment_method_options[crypto][deposit_options][networks][]": "bsc"})["id"] for i in range(INTENTS)]
    for i, intent in enumerate(intents):
        paid = call(ports[(i + 1) % 2], secret_key, "POST",
                    f"/v1/test_helpers/payment_intents/{intent}/simulate_crypto_deposit",
                    {"network": "bsc", "token_currency": "usdt"})
        assert paid["test_helper"]["transaction_hash"]
    # then the watchers see them and the workers apply them; with blocks on top they succeed
    until(lambda: all(status_of(i) == "succeeded" for i in intents), "the intents to succeed", mine=True)

    # When one more intent is paid, seen (processing, not final), and its block is reorged away
    reorged = call(ports[0], secret_key, "POST", "/v1/payment_intents", {
        "amount": 2000, "currency": "usd", "payment_method_options[crypto][deposit_options][networks][]": "bsc"})["id"]
    first = call(ports[1], secret_key, "POST", f"/v1/test_helpers/payment_intents/{reorged}/simulate_crypto_deposit",
                 {"network": "bsc", "token_currency": "usdt"})["test_helper"]["transaction_hash"]
    until(lambda: status_of(reorged) == "processing", "the payment to be seen")
    rpc(chain.rpc_url, "anvil_reorg", [1, []])  # the head re-mined without the payment
    # then the intent waits for its money again
    until(lambda: status_of(reorged) == "requires_action", "the reorg to take the payment back")
    assert Transfer.objects.get(tx_hash=first).orphaned_at is not None
    # and when it is paid again, the replacement is credited
    call(ports[0], secret_key, "POST", f"/v1/test_helpers/payment_intents/{reorged}/simulate_crypto_deposit",
         {"network": "bsc", "token_currency": "usdt"})
    until(lambda: status_of(reorged) == "succeeded", "the replacement to succeed", mine=True)
    intents.append(reorged)

    # Then each intent succeeded once, on one Charge of one transfer, recorded once although two watchers ran
    until(lambda: not ChargeLedgerOutbox.objects.exists(), "the ledger to post the charges")
    for intent in intents:
        [charge] = Charge.objects.filter(payment_intent_id=intent)
        assert charge.status == "succeeded"
        assert Event.objects.filter(object_id=intent, type="payment_intent.succeeded").count() == 1
        assert JournalTransaction.objects.filter(source_type="charge", source_id=charge.id,
                                                 kind="charge_credit").count() == 1
        live = Transfer.objects.filter(deposit_address__payment_intent__id=intent, orphaned_at__isnull=True)
        assert list(live.values_list("id", flat=True)) == [charge.transfer_id]
    assert Transfer.objects.filter(orphaned_at__isnull=False).count() == 1
    assert max(locks_seen) <= 1  # never two scanners of the chain at once (PostgreSQL's lock; sampled)
    # and every event of the merchant reached the receiver at least once
    events = set(Event.objects.filter(merchant=endpoint.merchant).values_list("id", flat=True))
    until(lambda: events <= {r.event["id"] for r in receiver.at("/ok")}, "every event to be delivered")
    assert {"payment_intent.succeeded", "charge.succeeded", "payment_intent.processing"} <= set(
        Event.objects.filter(id__in=events).values_list("type", flat=True))
    # and the signer worker answers check_live's ping
    [signer] = check_signer(timeout=5)
    assert signer.status == "PASS" and "signer@" in signer.detail, signer
