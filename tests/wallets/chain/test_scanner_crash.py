"""The chain watcher and the payments side killed with SIGKILL at random moments, in real subprocesses.

The `watch` / `scan` management commands (and a loop of `payments.funding.address_activity_process`) run against
the test database and an anvil of their own while a few hundred transfers go to our addresses; each is killed -9
while it works, restarted, killed again, 26 times; then a real `python manage.py watch` runs to the end. The killed
runs are children forked from a warm Django process (tests/wallets/chain/forker.py): separate processes with their
own database connections, that start in milliseconds where a fresh interpreter takes seconds on a busy machine.
The two-scanners test starts real `manage.py` processes only. Every transfer the chain holds for our addresses
must be recorded exactly once, the cursor must stand at the head, and every intent must show exactly what it was
paid, with one Charge per transfer.

Transactional database: the subprocesses only see committed rows (and the test only sees theirs). The subprocesses
send their after-commit task to an in-memory broker (nothing reaches Redis's broker database).
"""
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from payments import funding
from payments.models import Charge, Event, PaymentIntent, UnmatchedDeposit
from payments.services import PaymentIntentInput, payment_intent_create
from tests.chain import register_devnet_for_tests, running_anvil
from wallets.chain.scanner import log_ranges_forget
from wallets.chain.services import chain_cursor_init
from wallets.devchain import rpc
from wallets.models import AddressActivity, ChainCursor, Transfer
from wallets.services import deposit_address_allocate

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
STRANGER = "0x" + "ab" * 20
TOKEN = 10**18  # both test tokens have 18 decimals: 1.00 USD


@pytest.fixture(scope="module")
def chain():
    with running_anvil() as anvil:
        yield anvil


@pytest.fixture
def network(chain, transactional_db, networks, wallet):
    log_ranges_forget()
    network = register_devnet_for_tests(chain)
    network.max_log_range = 1  # a step a block (one transaction each): more moments to be killed in
    network.save(update_fields=["max_log_range"])
    yield network
    log_ranges_forget()


@pytest.fixture
def env(chain, network):
    """The environment of a subprocess that works on this test's database and chain."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings.test", "DATABASE_URL": url,
        network.rpc_env: chain.rpc_url, "CELERY_BROKER_URL": "memory://", "REDIS_URL": "redis://127.0.0.1:6379/7",
        "PYTHONUNBUFFERED": "1",
    }


class Processes:
    """The subprocesses a test started, each stopped (and reaped) at the end whatever happens."""

    def __init__(self, env: dict, log_dir: Path):
        self.env, self.log_dir, self.running, self.count = env, log_dir, [], 0

    def start(self, *args: str) -> subprocess.Popen:
        self.count += 1
        log = open(self.log_dir / f"{self.count:03d}-{args[0]}.log", "wb")
        process = subprocess.Popen([sys.executable, "manage.py", *args], cwd=REPO, env=self.env,
                                   stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill(process)

    def stop_all(self) -> None:
        for process in self.running:
            self.kill(process)


@pytest.fixture
def processes(env, tmp_path):
    started = Processes(env, tmp_path)
    yield started
    started.stop_all()


class Forker:
    """tests/wallets/chain/forker.py: children forked from a warm Django process (see there), killed by pid."""

    def __init__(self, env: dict, log_dir: Path):
        self.log = open(log_dir / "forker.log", "wb")
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("forker.py"))], cwd=REPO,
                                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True)
        self.children: list[int] = []

    def start(self, *args: str) -> int:
        self.process.stdin.write(" ".join(args) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line.strip().isdigit(), f"the forker answered {line!r} (see its log)"
        self.children.append(int(line))
        return int(line)

    @staticmethod
    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self, pid: int) -> None:
        if self.alive(pid):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.alive(pid), timeout=30, what=f"process {pid} to go")

    def close(self) -> None:
        for pid in self.children:
            if self.alive(pid):
                os.kill(pid, signal.SIGKILL)
        for pid in self.children:
            wait_until(lambda: not self.alive(pid), timeout=30, what=f"process {pid} to go")
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def forker(env, tmp_path):
    started = Forker(env, tmp_path)
    yield started
    started.close()


def head(chain) -> int:
    return int(rpc(chain.rpc_url, "eth_blockNumber"), 16)


def send_blocks(chain, rng: random.Random, transfers: list[tuple[str, str, int]], per_block: int = 4) -> None:
    """Send `transfers` (token, to, amount) from anvil's unlocked accounts, `per_block` to a block (automine off,
    then one anvil_mine per block), with up to two empty blocks after each."""
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    try:
        for i in range(0, len(transfers), per_block):
            for token, to, amount in transfers[i:i + per_block]:
                data = "0xa9059cbb" + to[2:].rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
                rpc(chain.rpc_url, "eth_sendTransaction", [{
                    "from": chain.accounts[rng.randint(1, 8)], "to": chain.tokens[token], "data": data,
                    "gas": hex(100_000),
                }])
            rpc(chain.rpc_url, "anvil_mine", [hex(1 + rng.randint(0, 2))])
    finally:
        rpc(chain.rpc_url, "evm_setAutomine", [True])
    assert int(rpc(chain.rpc_url, "txpool_status")["pending"], 16) == 0


def canonical_transfers(chain, *, first: int, ours: set[str]) -> dict[tuple, tuple[str, int]]:
    """{(tx hash, log index, block hash): (recipient, amount)} of every token Transfer to `ours` from block `first`
    on, straight from the node."""
    logs = rpc(chain.rpc_url, "eth_getLogs", [{"fromBlock": hex(first), "toBlock": "latest",
                                               "address": list(chain.tokens.values())}])
    return {
        (log["transactionHash"], int(log["logIndex"], 16), log["blockHash"]): ("0x" + log["topics"][2][26:],
                                                                               int(log["data"], 16))
        for log in logs if "0x" + log["topics"][2][26:] in ours
    }


def cursor_row(network) -> tuple:
    return ChainCursor.objects.filter(network=network).values_list("block_number", "updated").first()


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def wait_until_stepping(network, before, running, timeout: float = 60.0) -> None:
    """Until the scanner subprocess has committed a step (the cursor row changed), or is no longer `running()`."""
    wait_until(lambda: cursor_row(network) != before or not running(), timeout=timeout,
               what="the scanner's first step")


def assert_recorded_exactly_once(chain, network, *, first: int, ours: set[str]) -> dict:
    expected = canonical_transfers(chain, first=first, ours=ours)
    rows = list(Transfer.objects.values_list("tx_hash", "log_index", "block_hash", "to_address", "amount_base_units",
                                             "orphaned_at", "finalized_at"))
    keys = Counter(row[:3] for row in rows)
    assert not [key for key, n in keys.items() if n > 1], "recorded twice"
    assert set(keys) == set(expected) and len(rows) == len(expected)
    for tx_hash, log_index, block_hash, to, amount, orphaned_at, finalized_at in rows:
        assert expected[(tx_hash, log_index, block_hash)] == (to, amount)
        assert orphaned_at is None and finalized_at is not None
    cursor = ChainCursor.objects.get(network=network)
    assert cursor.block_number == head(chain) and cursor.lag == 0
    return expected


def caught_up_and_final(chain, network) -> bool:
    cursor = cursor_row(network)
    return (cursor is not None and cursor[0] == head(chain)
            and not Transfer.objects.filter(finalized_at__isnull=True).exists())


def test_scanner_and_payments_killed_at_random_moments_record_and_credit_every_transfer_exactly_once(
    chain, network, merchant, processes, forker
):
    seed = int(os.environ.get("CRASH_TEST_SEED", "20261202"))
    rng = random.Random(seed)
    # Given intents paid in one, two or three parts, exactly, short or over, in either token; addresses of ours
    # without an intent; and a stranger's address
    plans = [[10], [4, 6], [3, 3, 4], [15], [5], [7, 7], [2, 2, 2, 2, 2]]  # whole USD, for intents of 10.00 USD
    intents = [
        payment_intent_create(merchant=merchant, livemode=False,
                              data=PaymentIntentInput(amount=1000, currency="usd", networks=["bsc"]))
        for _ in range(28)
    ]
    plain = [deposit_address_allocate(merchant=merchant) for _ in range(8)]
    transfers = []
    for i, intent in enumerate(intents):
        for part in plans[i % len(plans)]:
            transfers.append((rng.choice(["usdt", "usdc"]), intent.deposit_address.address, part * TOKEN))
    for i in range(150):
        transfers.append((rng.choice(["usdt", "usdc"]), plain[i % len(plain)].address, TOKEN + i))
    transfers += [("usdt", STRANGER, TOKEN)] * 20
    rng.shuffle(transfers)
    ours = {i.deposit_address.address for i in intents} | {a.address for a in plain}

    first = head(chain) + 1
    chain_cursor_init(network=network, block_number=first - 1)
    kills = 26  # 20 of them watchers (which never exit on their own), 6 rescans (which may finish first)
    chunks = [transfers[: len(transfers) // 3]] + [transfers[len(transfers) // 3:][k::kills] for k in range(kills)]
    send_blocks(chain, rng, chunks[0])

    # When the scanner and the payments side are killed -9 at random moments, 26 times, with new transfers between
    killed_while_stepping = 0
    for k in range(kills):
        before = cursor_row(network)
        if k % 4 == 3:  # now and then a rescan from a little way back (idempotent) instead of the watcher
            back = max(first, before[0] - rng.randint(0, 30))
            scanner = forker.start("scan", "--chain", "devnet", "--from-block", str(back))
        else:
            scanner = forker.start("watch", "--chain", "devnet", "--no-ws")
        applier = forker.start("apply")
        wait_until_stepping(network, before, lambda: forker.alive(scanner))
        time.sleep(rng.uniform(0.0, 0.3))
        killed_while_stepping += forker.alive(scanner)
        forker.kill(scanner)
        time.sleep(rng.uniform(0.0, 0.3))
        forker.kill(applier)
        send_blocks(chain, rng, chunks[k + 1])
    assert killed_while_stepping >= 20, killed_while_stepping

    # Then, once a watcher ran to the end (and the payments side applied what it queued)
    rpc(chain.rpc_url, "anvil_mine", ["0x3"])  # every transfer final (finalized = head - 2)
    watcher = processes.start("watch", "--chain", "devnet", "--no-ws")  # a real `manage.py watch` this time
    applier = forker.start("apply")
    wait_until(lambda: caught_up_and_final(chain, network), timeout=120, what="the watcher to catch up",
               interval=0.2)
    processes.stop(watcher)
    assert watcher.returncode == 0
    wait_until(lambda: not AddressActivity.objects.exists(), timeout=60, what="the queue to drain", interval=0.2)
    forker.kill(applier)
    assert funding.address_activity_process() == 0

    # every transfer to our addresses is recorded exactly once, final; the cursor is at the head
    expected = assert_recorded_exactly_once(chain, network, first=first, ours=ours)
    assert len(expected) == len(transfers) - 20 and len(expected) >= 200

    # every intent shows exactly what it was paid, with one Charge (and one charge.succeeded) per transfer
    paid = defaultdict(list)
    for (tx_hash, log_index, _), (to, amount) in expected.items():
        paid[to].append(amount)
    for intent in PaymentIntent.objects.select_related("deposit_address"):
        amounts = paid[intent.deposit_address.address]
        total = Fraction(sum(amounts) * 100, TOKEN)
        assert intent.amount_received == int(total) and intent.amount_seen == int(total)
        assert intent.status == ("succeeded" if total >= intent.amount else "requires_action"), intent.id
        charges = list(Charge.objects.filter(payment_intent=intent).select_related("transfer"))
        assert sorted(c.transfer.amount_base_units for c in charges) == sorted(amounts)
        # each Charge is its transfer's worth, give or take the cent that fractions add up to, and together they
        # are exactly what the intent received
        assert all(c.status == "succeeded" and c.amount - c.transfer.amount_base_units * 100 // TOKEN in (0, 1)
                   for c in charges)
        assert sum(c.amount for c in charges) == intent.amount_received
        types = list(Event.objects.filter(object_id=intent.id).order_by("sequence").values_list("type", flat=True))
        assert types[:2] == ["payment_intent.created", "payment_intent.requires_action"]
        assert types.count("payment_intent.succeeded") == (intent.status == "succeeded")
        assert "payment_intent.reversed" not in types
        sequences = list(Event.objects.filter(object_id=intent.id).order_by("sequence")
                         .values_list("sequence", flat=True))
        assert sequences == list(range(1, len(sequences) + 1))
    assert Charge.objects.count() == sum(len(paid[i.deposit_address.address]) for i in intents)
    for charge_id in Charge.objects.values_list("id", flat=True):
        assert Event.objects.filter(object_id=charge_id).count() == 1
    # the transfers to our addresses that no intent owns: each an unmatched deposit, once, with its one event
    plain_transfers = Transfer.objects.filter(deposit_address__in=plain)
    assert plain_transfers.count() == 150
    assert UnmatchedDeposit.objects.count() == 150 and set(
        UnmatchedDeposit.objects.values_list("transfer_id", flat=True)) == set(plain_transfers.values_list("id",
                                                                                                          flat=True))
    assert set(UnmatchedDeposit.objects.values_list("reason", flat=True)) == {"no_open_intent"}
    assert Event.objects.filter(type="crypto.deposit.unmatched").count() == 150


def test_two_scanners_started_together_and_one_killed_still_record_each_transfer_once(
    chain, network, merchant, processes
):
    rng = random.Random(7)
    addresses = [deposit_address_allocate(merchant=merchant) for _ in range(5)]
    ours = {a.address for a in addresses}
    first = head(chain) + 1
    chain_cursor_init(network=network, block_number=first - 1)
    send_blocks(chain, rng, [(rng.choice(["usdt", "usdc"]), rng.choice(sorted(ours)), TOKEN + i) for i in range(120)])

    # Two watchers and a rescan, started at the same time; one watcher killed -9 while they run, a fresh one started
    before = cursor_row(network)
    a = processes.start("watch", "--chain", "devnet", "--no-ws")
    b = processes.start("watch", "--chain", "devnet", "--no-ws")
    c = processes.start("scan", "--chain", "devnet", "--from-block", str(first))
    wait_until_stepping(network, before, lambda: a.poll() is None)
    time.sleep(rng.uniform(0.0, 0.5))
    processes.kill(a)
    send_blocks(chain, rng, [("usdt", rng.choice(sorted(ours)), 2 * TOKEN + i) for i in range(40)])
    d = processes.start("watch", "--chain", "devnet", "--no-ws")
    rpc(chain.rpc_url, "anvil_mine", ["0x3"])
    c.wait(timeout=120)
    assert c.returncode == 0
    wait_until(lambda: caught_up_and_final(chain, network), timeout=120, what="the watchers to catch up",
               interval=0.2)
    for process in (b, d):
        processes.stop(process)

    expected = assert_recorded_exactly_once(chain, network, first=first, ours=ours)
    assert len(expected) == 160
