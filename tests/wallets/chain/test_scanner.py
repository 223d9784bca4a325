"""The chain scanner against a real anvil of its own (reorgs and rollbacks must not disturb the other tests' chain).

anvil runs with --slots-in-an-epoch 1: the `finalized` tag is head-2. Every test starts its cursor at the chain's
current head, so the blocks earlier tests mined do not matter. Transactional database: steps run in threads with
connections of their own, and `on_commit` really fires.
"""
import json
import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from gateway.celery import app as celery_app
from tests.chain import free_port, register_devnet_for_tests, running_anvil, running_other_chain
from wallets.chain import scanner
from wallets.chain.rpc import RpcClient, RpcError
from wallets.chain.scanner import PAYMENTS_ACTIVITY_TASK, Status, log_ranges_forget, scan_step
from wallets.chain.selectors import chain_cursor_get, transfers_for_address
from wallets.chain.services import chain_cursor_rewind
from wallets.devchain import rpc
from wallets.models import AddressActivity, ChainCursor, Network, ScannedBlock, SendingAddress, Token, Transfer
from wallets.services import deposit_address_allocate

STRANGER = "0x" + "ab" * 20  # an address that is not ours


# --- Fixtures and helpers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain():
    with running_anvil() as anvil:
        yield anvil


@pytest.fixture
def network(chain, transactional_db):
    log_ranges_forget()
    network = register_devnet_for_tests(chain)
    yield network
    log_ranges_forget()


@pytest.fixture
def client(chain):
    return RpcClient([chain.rpc_url], name="devnet-test", retry_budget=1.0)


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    """The tasks the scanner sends (by name) after its commits; nothing reaches the broker."""
    names = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, *a, **kw: names.append(name))
    return names


@pytest.fixture
def addresses(network, merchant, wallet):
    return [deposit_address_allocate(merchant=merchant) for _ in range(3)]


def head(chain) -> int:
    return int(rpc(chain.rpc_url, "eth_blockNumber"), 16)


def mine(chain, blocks: int) -> None:
    if blocks > 0:
        rpc(chain.rpc_url, "anvil_mine", [hex(blocks)])


def erc20_tx(chain, *, token: str, to: str, amount: int, sender: int = 1) -> dict:
    data = "0xa9059cbb" + to[2:].rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
    return {"from": chain.accounts[sender], "to": chain.tokens[token], "data": data}


def send(chain, tx: dict) -> dict:
    """Send from an unlocked account; the receipt once mined (automine: at once, in a block of its own)."""
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [tx])
    deadline = time.monotonic() + 10
    while (receipt := rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash])) is None:
        assert time.monotonic() < deadline, f"{tx_hash} not mined"
        time.sleep(0.02)
    return receipt


def send_erc20(chain, *, token: str, to: str, amount: int, sender: int = 1) -> dict:
    receipt = send(chain, erc20_tx(chain, token=token, to=to, amount=amount, sender=sender))
    assert receipt["status"] == "0x1"
    return receipt


def scan_until_caught_up(network, client, **kwargs) -> list:
    steps = []
    for _ in range(100):
        step = scan_step(network=network, client=client, **kwargs)
        steps.append(step)
        assert not step.back_off, step
        if step.caught_up:
            return steps
    raise AssertionError(f"not caught up after 100 steps: {steps[-1]}")


def activity_address_ids() -> list[int]:
    return sorted(AddressActivity.objects.values_list("deposit_address_id", flat=True))


# --- Recording ------------------------------------------------------------------------------------------------------


def test_transfers_to_our_addresses_are_recorded_with_exact_amounts(chain, network, client, addresses, sent):
    # Given a network scanned up to its head, that also reads native coin, and whose USDC is switched off
    network.scan_native = True
    network.save(update_fields=["scan_native"])
    Token.objects.filter(network=network, currency="usdc").update(is_active=False)
    scan_until_caught_up(network, client)
    assert ChainCursor.objects.get(network=network).block_number == head(chain)
    ours, other = addresses[0].address, addresses[1].address
    reverting = addresses[2].address
    rpc(chain.rpc_url, "anvil_setCode", [reverting, "0x60006000fd"])  # PUSH 0 PUSH 0 REVERT: value sent to it fails

    # When tokens and native coin go to our addresses and to a stranger's
    usdt_amount, usdc_amount, native_amount = 12_345_678_901_234_567_890, 5 * 10**18 + 1, 10**17 + 3
    usdt = send_erc20(chain, token="usdt", to=ours, amount=usdt_amount)
    usdc = send_erc20(chain, token="usdc", to=other, amount=usdc_amount, sender=2)
    send_erc20(chain, token="usdt", to=STRANGER, amount=10**18)
    native = send(chain, {"from": chain.accounts[3], "to": ours, "value": hex(native_amount)})
    send(chain, {"from": chain.accounts[3], "to": STRANGER, "value": hex(10**17)})
    failed = send(chain, {"from": chain.accounts[4], "to": reverting, "value": hex(10**15), "gas": hex(100_000)})
    assert failed["status"] == "0x0"
    rpc(chain.rpc_url, "anvil_setCode", [reverting, "0x"])
    steps = scan_until_caught_up(network, client)

    # Then exactly the three transfers to our addresses are recorded, with their exact amounts and blocks
    rows = {(t.tx_hash, t.log_index): t for t in Transfer.objects.select_related("token")}
    assert set(rows) == {(usdt["transactionHash"], 0), (usdc["transactionHash"], 0), (native["transactionHash"], -1)}
    for receipt, amount, currency, address in (
        (usdt, usdt_amount, "usdt", addresses[0]), (usdc, usdc_amount, "usdc", addresses[1]),
        (native, native_amount, None, addresses[0]),
    ):
        row = rows[(receipt["transactionHash"], -1 if currency is None else 0)]
        assert row.amount_base_units == amount and isinstance(row.amount_base_units, int)
        assert (row.token.currency if row.token else None) == currency
        assert row.deposit_address_id == address.id and row.to_address == address.address
        assert row.from_address == receipt["from"]
        assert (row.block_number, row.block_hash) == (int(receipt["blockNumber"], 16), receipt["blockHash"])
        assert row.network_id == network.id and row.orphaned_at is None
    # a queue row per affected address, and the payments side told after the commit, by name
    assert set(activity_address_ids()) == {addresses[0].id, addresses[1].id}
    assert sent and set(sent) == {PAYMENTS_ACTIVITY_TASK}
    assert len(sent) == sum(1 for s in steps if s.activity_addresses)
    cursor = chain_cursor_get(network=network)
    assert cursor.block_number == cursor.head_number == head(chain) and cursor.lag == 0
    assert list(transfers_for_address(address=ours).values_list("log_index", flat=True)) == [0, -1]


def test_native_coin_sent_by_our_own_sending_addresses_is_not_a_deposit(chain, network, client, addresses):
    # Given a network that reads native coin, whose hot wallet and a deposit sending address are known
    network.scan_native = True
    network.save(update_fields=["scan_native"])
    hot, depositor = chain.accounts[5], chain.accounts[6]
    SendingAddress.objects.create(network=network, address=hot.lower(), key_ref="m/hot", next_nonce=0)
    SendingAddress.objects.create(network=network, address=depositor.lower(), key_ref="m/dep", next_nonce=0,
                                  purpose=SendingAddress.Purpose.DEPOSIT)
    scan_until_caught_up(network, client)
    ours = addresses[0].address

    # When the hot wallet tops the address up with gas (the non-7702 fallback), a sending address sends it coin too,
    # and a customer pays native coin
    send(chain, {"from": hot, "to": ours, "value": hex(10**16)})
    send(chain, {"from": depositor, "to": ours, "value": hex(10**15)})
    paid = send(chain, {"from": chain.accounts[3], "to": ours, "value": hex(10**17 + 7)})
    scan_until_caught_up(network, client)

    # Then only the customer's payment is recorded: no top-up is a deposit
    assert list(Transfer.objects.values_list("tx_hash", "amount_base_units")) == [(paid["transactionHash"],
                                                                                   10**17 + 7)]


def test_finality_is_set_only_at_or_under_the_finalized_tag(chain, network, client, addresses):
    # Given a transfer in the head block b, scanned
    scan_until_caught_up(network, client)
    receipt = send_erc20(chain, token="usdt", to=addresses[0].address, amount=7 * 10**18)
    block = int(receipt["blockNumber"], 16)
    scan_until_caught_up(network, client)
    transfer = Transfer.objects.get()
    assert transfer.finalized_at is None
    assert ChainCursor.objects.get(network=network).finalized_number == block - 2  # anvil: finalized = head - 2

    # When one more block is mined, the finalized tag (b-1) is still below it
    mine(chain, 1)
    scan_until_caught_up(network, client)
    transfer.refresh_from_db()
    assert transfer.finalized_at is None

    # When a second one is mined, the tag reaches b: the transfer is final, and the address has activity again
    mine(chain, 1)
    assert int(rpc(chain.rpc_url, "eth_getBlockByNumber", ["finalized", False])["number"], 16) == block
    steps = scan_until_caught_up(network, client)
    transfer.refresh_from_db()
    assert transfer.finalized_at is not None and transfer.orphaned_at is None and transfer.is_final
    assert sum(s.transfers_finalized for s in steps) == 1
    assert activity_address_ids() == [addresses[0].id, addresses[0].id]  # seen, then final
    # the stored hash chain ends at the cursor's block, with its hash
    cursor = ChainCursor.objects.get(network=network)
    assert ScannedBlock.objects.filter(network=network).latest("number").hash == cursor.block_hash


# --- Reorgs ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_a_reorg_orphans_the_transfer_and_credits_the_replacement_once(chain, network, client, addresses, depth):
    if depth > 2:  # deeper than anvil's finalized tag (head-2): finality by confirmations for this one
        network.finality, network.confirmations = Network.Finality.CONFIRMATIONS, 10
        network.save(update_fields=["finality", "confirmations"])
    address = addresses[0]
    scan_until_caught_up(network, client)

    # Given a transfer `depth` blocks from the head, seen by the scanner and not final
    # (an explicit gas limit: anvil_reorg does not estimate, and its default makes the transfer revert)
    tx = erc20_tx(chain, token="usdt", to=address.address, amount=42 * 10**18, sender=5) | {"gas": hex(100_000)}
    original = send(chain, tx)
    mine(chain, depth - 1)
    scan_until_caught_up(network, client)
    seen = Transfer.objects.get()
    assert seen.tx_hash == original["transactionHash"] and seen.finalized_at is None
    AddressActivity.objects.all().delete()  # as the payments side would, having applied it

    # When the last `depth` blocks are re-mined (no `removed: true` from anvil 1.7.1) with the same payment in the
    # last new block, a new transaction
    tip = head(chain)
    rpc(chain.rpc_url, "anvil_reorg", [depth, [[tx, depth - 1]]])
    assert head(chain) == tip
    steps = scan_until_caught_up(network, client)

    # Then the old row is orphaned, not deleted, and the replacement is a new row, credited once
    assert max(s.reorg_depth for s in steps) == depth
    seen.refresh_from_db()
    assert seen.orphaned_at is not None and seen.finalized_at is None
    live = Transfer.objects.get(orphaned_at__isnull=True)
    replacement_block = rpc(chain.rpc_url, "eth_getBlockByNumber", [hex(tip), False])
    assert live.tx_hash in replacement_block["transactions"] and live.tx_hash != seen.tx_hash
    assert (live.block_number, live.block_hash) == (tip, replacement_block["hash"])
    assert live.amount_base_units == 42 * 10**18 and live.deposit_address_id == address.id
    assert Transfer.objects.count() == 2
    assert activity_address_ids() == [address.id]  # one row: orphaned + new, same address, same step

    # When the new chain becomes final, only the replacement is final
    mine(chain, network.confirmations if depth > 2 else 2)
    scan_until_caught_up(network, client)
    seen.refresh_from_db()
    live.refresh_from_db()
    assert live.is_final and seen.finalized_at is None and seen.orphaned_at is not None
    assert ScannedBlock.objects.get(network=network, number=tip).hash == replacement_block["hash"]


def test_a_rollback_waits_for_the_node_and_then_orphans_the_transfer(chain, network, client, addresses):
    scan_until_caught_up(network, client)
    receipt = send_erc20(chain, token="usdc", to=addresses[1].address, amount=10**18)
    block = int(receipt["blockNumber"], 16)
    scan_until_caught_up(network, client)
    transfer = Transfer.objects.get()

    # When the node drops the block, it is behind our cursor but agrees below: nothing to do yet
    rpc(chain.rpc_url, "anvil_rollback", [1])
    step = scan_step(network=network, client=client)
    assert step.status == Status.WAITING and not step.back_off and step.cursor == block
    transfer.refresh_from_db()
    assert transfer.orphaned_at is None

    # When a different block b is mined, the hashes differ: the transfer is orphaned, the cursor moved back and on
    mine(chain, 1)
    steps = scan_until_caught_up(network, client)
    assert steps[0].reorg_depth == 1 and steps[0].transfers_orphaned == 1
    transfer.refresh_from_db()
    assert transfer.orphaned_at is not None
    assert Transfer.objects.count() == 1  # the dropped transaction is in no block now
    assert chain_cursor_get(network=network).block_hash == rpc(
        chain.rpc_url, "eth_getBlockByNumber", [hex(block), False])["hash"]


def test_reorgs_racing_a_running_scanner_leave_exactly_the_canonical_transfers(chain, network, client, addresses):
    # Given a scanner stepping in a thread while the chain keeps re-mining its last blocks under it
    network.finality, network.confirmations = Network.Finality.CONFIRMATIONS, 10
    network.save(update_fields=["finality", "confirmations"])
    scan_until_caught_up(network, client)
    first = head(chain) + 1
    stop, statuses = threading.Event(), []

    def scanning():
        try:
            own_network = Network.objects.get(id=network.id)
            own_client = RpcClient([chain.rpc_url], name="racer")
            while not stop.is_set():
                statuses.append(scan_step(network=own_network, client=own_client).status)
        finally:
            connection.close()

    thread = threading.Thread(target=scanning)
    thread.start()
    try:
        for i in range(12):
            tx = erc20_tx(chain, token=("usdt", "usdc")[i % 2], to=addresses[i % 3].address, amount=10**18 + i,
                          sender=6) | {"gas": hex(100_000)}
            send(chain, tx)
            depth = 1 + i % 3
            mine(chain, depth - 1)  # the payment's block is the deepest one re-mined
            time.sleep(0.1)  # (mostly) seen by the scanner first
            replay = [[tx, depth - 1]] if i % 4 else []  # now and then the payment is simply gone
            rpc(chain.rpc_url, "anvil_reorg", [depth, replay])
            time.sleep(0.02 * (i % 3))
    finally:
        stop.set()
        thread.join(timeout=30)
    mine(chain, 10)
    scan_until_caught_up(network, client)

    # Then what is recorded as live is exactly what the node's canonical chain holds, each once and final
    ours = {a.address for a in addresses}
    logs = rpc(chain.rpc_url, "eth_getLogs", [{"fromBlock": hex(first), "toBlock": "latest",
                                               "address": list(chain.tokens.values())}])
    canonical = {(l["transactionHash"], int(l["logIndex"], 16), l["blockHash"]) for l in logs
                 if "0x" + l["topics"][2][26:] in ours}
    live = Transfer.objects.filter(orphaned_at__isnull=True)
    assert set(live.values_list("tx_hash", "log_index", "block_hash")) == canonical and live.count() == len(canonical)
    assert all(t.is_final for t in live)
    for orphan in Transfer.objects.filter(orphaned_at__isnull=False):
        assert (orphan.tx_hash, orphan.log_index, orphan.block_hash) not in canonical and orphan.finalized_at is None
    assert Status.SCANNED in statuses and Status.ERROR not in statuses and Status.UNAVAILABLE not in statuses


# --- Exactly once -----------------------------------------------------------------------------------------------------


def _run_in_threads(network_id: int, rpc_url: str, count: int = 2) -> list[list]:
    barrier = threading.Barrier(count)
    results: list[list] = [[] for _ in range(count)]
    errors = []

    def work(i):
        try:
            own_network = Network.objects.get(id=network_id)
            own_client = RpcClient([rpc_url], name=f"thread-{i}")
            barrier.wait()
            for _ in range(60):
                step = scan_step(network=own_network, client=own_client, max_blocks=2)
                results[i].append(step)
                if step.caught_up:
                    break
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_two_steps_and_two_concurrent_scanners_record_each_transfer_once(chain, network, client, addresses,
                                                                         monkeypatch):
    scan_until_caught_up(network, client)
    start = chain_cursor_get(network=network).block_number
    receipts = [
        send_erc20(chain, token=("usdt", "usdc")[i % 2], to=addresses[i % 3].address, amount=10**18 + i)
        for i in range(6)
    ]
    expected = {(r["transactionHash"], 0, r["blockHash"]) for r in receipts}

    def recorded():
        return sorted(Transfer.objects.values_list("tx_hash", "log_index", "block_hash"))

    # Two scanners in two threads, each with its own database connection and RPC client
    results = _run_in_threads(network.id, chain.rpc_url)
    statuses = {s.status for steps in results for s in steps}
    assert statuses <= {Status.SCANNED, Status.IDLE, Status.LOCKED}
    assert set(recorded()) == expected and len(recorded()) == 6
    activity = activity_address_ids()

    # Twice over the same blocks (a rewind, sequential steps): nothing new, no new activity
    chain_cursor_rewind(network=network, block_number=start)
    scan_until_caught_up(network, client, max_blocks=3)
    scan_until_caught_up(network, client)
    assert len(recorded()) == 6 and activity_address_ids() == activity

    # And with the advisory lock out of the way, the cursor row lock and the unique constraint still hold
    chain_cursor_rewind(network=network, block_number=start)
    monkeypatch.setattr(scanner, "_lock_try", lambda **kwargs: True)
    results = _run_in_threads(network.id, chain.rpc_url)
    assert {s.status for steps in results for s in steps} <= {Status.SCANNED, Status.IDLE}
    assert set(recorded()) == expected and len(recorded()) == 6
    assert activity_address_ids() == activity
    assert chain_cursor_get(network=network).block_number == head(chain)


def test_a_scanner_holding_the_lock_makes_the_other_back_off(chain, network, client):
    outcome = []

    def other():
        try:
            outcome.append(scan_step(network=Network.objects.get(id=network.id), client=client))
        finally:
            connection.close()

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [scanner.LOCK_CLASS, network.id])
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=30)
    assert outcome[0].status == Status.LOCKED and outcome[0].back_off
    assert not ChainCursor.objects.filter(network=network).exists()  # nothing done, not even the cursor


def test_an_unreachable_node_writes_nothing_and_says_back_off(chain, network, client, addresses):
    scan_until_caught_up(network, client)
    before = ChainCursor.objects.get(network=network)
    send_erc20(chain, token="usdt", to=addresses[0].address, amount=10**18)
    dead = RpcClient([f"http://127.0.0.1:{free_port()}"], retry_budget=0.2)

    step = scan_step(network=network, client=dead)

    assert step.status == Status.UNAVAILABLE and step.back_off and not step.caught_up
    after = ChainCursor.objects.get(network=network)
    assert (after.block_number, after.block_hash, after.updated) == (before.block_number, before.block_hash,
                                                                     before.updated)
    assert not Transfer.objects.exists() and not AddressActivity.objects.exists()
    scan_until_caught_up(network, client)  # and the real node then gets it
    assert Transfer.objects.count() == 1


def test_a_node_of_another_chain_is_never_believed(chain, network, client, addresses):
    """The network's only RPC URL points at another chain (a testnet, a reset devnet): the step backs off and writes
    nothing; with the right node next to it, only the right node's answers are taken."""
    assert network.chain_id == int(rpc(chain.rpc_url, "eth_chainId"), 16) == 31337  # register_devnet's row
    scan_until_caught_up(network, client)
    before = ChainCursor.objects.get(network=network)
    send_erc20(chain, token="usdt", to=addresses[0].address, amount=10**18)
    with running_other_chain() as other_url:
        wrong = RpcClient([other_url], expected_chain_id=network.chain_id, retry_budget=0.2)

        step = scan_step(network=network, client=wrong)

        assert step.status == Status.UNAVAILABLE and step.back_off
        after = ChainCursor.objects.get(network=network)
        assert (after.block_number, after.block_hash) == (before.block_number, before.block_hash)
        assert not Transfer.objects.exists() and not AddressActivity.objects.exists()

        both = RpcClient([other_url, chain.rpc_url], expected_chain_id=network.chain_id, retry_budget=1.0)
        scan_until_caught_up(network, both)
        assert Transfer.objects.count() == 1 and [s["excluded"] for s in both.status()] == [True, False]


# --- Ranges, lookups, the command --------------------------------------------------------------------------------


class RangeCappedClient:
    """The real client, except that eth_getLogs over more than `cap` blocks is refused like a provider's result
    cap (Infura's text; with or without a suggested range)."""

    def __init__(self, real: RpcClient, *, cap: int, suggest: bool):
        self.real, self.cap, self.suggest, self.calls = real, cap, suggest, []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def get_logs(self, from_block, to_block, addresses, topics):
        self.calls.append((from_block, to_block))
        if to_block - from_block + 1 > self.cap:
            hint = f" Try with this block range [{hex(from_block)}, {hex(from_block + self.cap - 1)}]." \
                if self.suggest else ""
            raise RpcError(-32005, "query returned more than 10000 results." + hint, method="eth_getLogs")
        return self.real.get_logs(from_block, to_block, addresses, topics)


@pytest.mark.parametrize("suggest", [False, True])
def test_the_log_range_adapts_to_a_result_cap_and_never_skips_a_block(chain, network, client, addresses, suggest):
    network.max_log_range = 64
    network.save(update_fields=["max_log_range"])
    scan_until_caught_up(network, client)
    start = chain_cursor_get(network=network).block_number + 1
    # Given 100 blocks of downtime with a transfer now and then
    receipts = []
    for i in range(4):
        receipts.append(send_erc20(chain, token="usdt", to=addresses[i % 3].address, amount=10**18 + i))
        mine(chain, 24)
    capped = RangeCappedClient(client, cap=10, suggest=suggest)

    scan_until_caught_up(network, capped)

    sizes = [b - a + 1 for a, b in capped.calls]
    # a process starts at INITIAL_LOG_RANGE (16) blocks; refused, it shrinks, then grows back by 1/8
    assert sizes[:4] == ([16, 10, 11, 10] if suggest else [16, 8, 9, 10])
    answered = [(a, b) for a, b in capped.calls if b - a + 1 <= 10]
    assert answered[0][0] == start and all(b + 1 == a for (_, b), (a, _) in zip(answered, answered[1:]))
    assert answered[-1][1] == head(chain)  # contiguous from the cursor to the head: resumed, never jumped
    assert sorted(Transfer.objects.values_list("tx_hash", flat=True)) == sorted(
        r["transactionHash"] for r in receipts)
    assert scanner.log_range_get(network) <= 11


def test_the_range_starts_small_doubles_while_answers_are_light_and_shrinks_on_a_dense_one(
        chain, network, client, addresses, monkeypatch):
    monkeypatch.setattr(scanner, "LOGS_PER_STEP", 4)
    scan_until_caught_up(network, client)
    # Given a backlog: 16 blocks, then one block holding 8 transfers, then 60 empty blocks
    mine(chain, 16)
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    try:
        hashes = [rpc(chain.rpc_url, "eth_sendTransaction", [erc20_tx(chain, token="usdt", to=addresses[i % 3].address,
                                                                       amount=10**18 + i)]) for i in range(8)]
        rpc(chain.rpc_url, "evm_mine")
    finally:
        rpc(chain.rpc_url, "evm_setAutomine", [True])
    mine(chain, 60)
    recording = RangeCappedClient(client, cap=10**6, suggest=False)

    scan_until_caught_up(network, recording)

    sizes = [b - a + 1 for a, b in recording.calls]
    # 16 blocks without a log, doubled to 32 (the dense block among them: 8 logs > 4), shrunk to 32 * 4 // 8 = 16
    assert sizes[:3] == [16, 32, 16]
    assert sorted(Transfer.objects.values_list("tx_hash", flat=True)) == sorted(hashes)


def test_a_catch_up_fetches_the_next_final_range_while_it_writes_and_records_each_transfer_once(
        chain, network, client, addresses):
    from wallets.chain.scanner import network_scan

    scan_until_caught_up(network, client)
    start = chain_cursor_get(network=network).block_number + 1
    receipts = []
    for i in range(6):  # a transfer now and then over about 100 blocks
        receipts.append(send_erc20(chain, token="usdc", to=addresses[i % 3].address, amount=2 * 10**18 + i))
        mine(chain, 16)
    threads = []

    class Recording(RangeCappedClient):
        def get_logs(self, *args):
            threads.append(threading.current_thread().name)
            return super().get_logs(*args)

    recording = Recording(client, cap=10**6, suggest=False)

    summary = network_scan(network=network, client=recording, budget_seconds=60)

    assert summary.caught_up and summary.cursor == head(chain)
    calls = recording.calls
    assert calls[0][0] == start and all(b + 1 == a for (_, b), (a, _) in zip(calls, calls[1:]))  # each range once
    assert any(name.startswith("scan-prefetch") for name in threads)
    assert sorted(Transfer.objects.values_list("tx_hash", flat=True)) == sorted(
        r["transactionHash"] for r in receipts)
    assert not scanner._prefetched  # nothing left behind once the scan returns


def test_a_prefetched_range_is_used_only_by_a_step_that_starts_where_it_starts(chain, network, client):
    mine(chain, 8)
    contracts = sorted(Token.objects.filter(network=network).values_list("contract_address", flat=True))
    top = head(chain)
    scanner._prefetch_start(network=network, client=client, start=top - 5, end=top - 3, contracts=contracts)
    assert scanner._prefetch_take(network=network, start=top - 6, end=top, contracts=contracts) is None  # a rewind
    scanner._prefetch_start(network=network, client=client, start=top - 5, end=top - 3, contracts=contracts)
    assert scanner._prefetch_take(network=network, start=top - 5, end=top - 4, contracts=contracts) is None  # too far
    scanner._prefetch_start(network=network, client=client, start=top - 5, end=top - 3, contracts=contracts)
    assert scanner._prefetch_take(network=network, start=top - 5, end=top, contracts=contracts) == (
        top - 3, client.get_logs(top - 5, top - 3, contracts, [scanner.TRANSFER_TOPIC]))


def test_each_network_prefetches_on_its_own_worker():
    """A network's step never waits for its prefetch behind another network's slow eth_getLogs."""
    release = threading.Event()

    class Slow:
        def get_logs(self, start, end, contracts, topics):
            release.wait(10)
            return []

    class Quick:
        def get_logs(self, start, end, contracts, topics):
            return [{"block": start}]

    slow_network, quick_network = Network(id=10**9, code="slow"), Network(id=10**9 + 1, code="quick")
    taken = []
    try:
        scanner._prefetch_start(network=slow_network, client=Slow(), start=1, end=2, contracts=[])
        scanner._prefetch_start(network=quick_network, client=Quick(), start=5, end=6, contracts=[])
        taker = threading.Thread(target=lambda: taken.append(
            scanner._prefetch_take(network=quick_network, start=5, end=6, contracts=[])), daemon=True)
        taker.start()
        taker.join(5)
        assert taken == [(6, [{"block": 5}])]  # not stuck behind the slow network's fetch
    finally:
        release.set()
        log_ranges_forget()


def test_recipients_are_looked_up_in_one_query_per_range(chain, network, client, addresses):
    scan_until_caught_up(network, client)
    for i, to in enumerate([a.address for a in addresses] + [STRANGER, "0x" + "cd" * 20]):
        send_erc20(chain, token=("usdt", "usdc")[i % 2], to=to, amount=10**18 + i)

    with CaptureQueriesContext(connection) as queries:
        step = scan_step(network=network, client=client)

    assert step.to_block == head(chain) and step.transfers_seen == 3
    lookups = [q["sql"] for q in queries.captured_queries if 'FROM "wallets_depositaddress"' in q["sql"]]
    assert len(lookups) == 1 and "= ANY(" in lookups[0]


def test_the_scan_command_backfills_and_rescans_idempotently(chain, network, client, addresses, monkeypatch):
    monkeypatch.setenv(network.rpc_env, chain.rpc_url)
    # Given a transfer made before the scanner's cursor existed: not seen by normal scanning
    receipt = send_erc20(chain, token="usdc", to=addresses[2].address, amount=3 * 10**18)
    block = int(receipt["blockNumber"], 16)
    mine(chain, 3)
    scan_until_caught_up(network, client)
    assert not Transfer.objects.exists()

    def scan(*args):
        out, err = StringIO(), StringIO()
        call_command("scan", "--chain", network.code, *args, stdout=out, stderr=err)
        return json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()

    # When scanning from its block: recorded, final at once (its block is final)
    summary, progress = scan("--from-block", str(block))
    assert summary["transfers_seen"] == 1 and summary["cursor"] == head(chain) and summary["lag"] == 0
    assert f"blocks {block}-" in progress
    transfer = Transfer.objects.get()
    assert transfer.tx_hash == receipt["transactionHash"] and transfer.amount_base_units == 3 * 10**18
    assert transfer.is_final
    activity = activity_address_ids()
    assert activity == [addresses[2].id]

    # When rescanning the same blocks, and a part of them: nothing new
    summary, _ = scan("--from-block", str(block - 1))
    assert summary["transfers_seen"] == 0 and summary["cursor"] == head(chain)
    summary, _ = scan("--from-block", str(block), "--to-block", str(block + 1))
    assert summary["cursor"] == block + 1 and summary["transfers_seen"] == 0
    scan_until_caught_up(network, client)  # the regular scanner carries on from there
    assert Transfer.objects.count() == 1 and activity_address_ids() == activity
    assert chain_cursor_get(network=network).block_number == head(chain)


# --- The ways it runs: the beat task and the watcher ----------------------------------------------------------------


def test_the_beat_task_scans_every_network_with_an_rpc_url(chain, network, client, addresses, monkeypatch):
    from wallets.tasks import scan_chains

    monkeypatch.setenv(network.rpc_env, chain.rpc_url)
    scan_until_caught_up(network, client)
    send_erc20(chain, token="usdt", to=addresses[0].address, amount=10**18)

    summaries = scan_chains()  # (seeded networks without an RPC URL in the environment are left out)

    assert summaries["devnet"]["caught_up"] and summaries["devnet"]["transfers_seen"] == 1
    assert Transfer.objects.count() == 1


def test_the_watcher_wakes_on_new_heads_and_scans(chain, network, client, addresses, monkeypatch):
    monkeypatch.setenv(network.rpc_env, chain.rpc_url)
    Network.objects.filter(id=network.id).update(block_time_ms=60_000)  # polling alone would not see it in time
    scan_until_caught_up(network, client)
    later = threading.Timer(1.0, send_erc20, args=(chain,), kwargs={"token": "usdc", "to": addresses[1].address,
                                                                     "amount": 5 * 10**18})
    later.start()
    err = StringIO()

    call_command("watch", "--chain", network.code, "--duration", "2.5", stderr=err)

    later.join()
    assert "watching devnet" in err.getvalue()
    transfer = Transfer.objects.get()
    assert transfer.amount_base_units == 5 * 10**18 and transfer.deposit_address_id == addresses[1].id


def test_a_block_that_comes_back_after_being_orphaned_counts_again_through_a_new_row(network, addresses):
    # Given a transfer recorded then orphaned (its block left the canonical chain)
    from django.utils import timezone

    token = Token.objects.get(network=network, currency="usdt")
    candidate = scanner._Candidate(
        token=token, tx_hash="0x" + "1" * 64, log_index=3, block_number=10, block_hash="0x" + "2" * 64,
        from_address=STRANGER, to_address=addresses[0].address, amount=5,
    )
    insert = dict(network=network, candidates=[candidate], address_ids={addresses[0].address: addresses[0].id},
                  final=0, now=timezone.now(), start=10, end=10)
    assert scanner._transfers_insert(**insert)[0] == 1
    Transfer.objects.update(orphaned_at=timezone.now())

    # When the same block, with the same hash, is canonical again and scanned twice
    assert scanner._transfers_insert(**insert)[0] == 1
    assert scanner._transfers_insert(**insert)[0] == 0

    # Then the orphaned row stays as history and exactly one live row counts
    rows = Transfer.objects.order_by("id")
    assert [r.orphaned_at is None for r in rows] == [False, True]


def test_the_watcher_survives_a_database_error_and_goes_on_scanning(chain, network, client, addresses, monkeypatch):
    # Given a watcher polling fast, whose step will wait for the cursor row that another transaction holds
    monkeypatch.setenv(network.rpc_env, chain.rpc_url)
    Network.objects.filter(id=network.id).update(block_time_ms=100)
    scan_until_caught_up(network, client)
    terminated, errors = [], []

    def interfere():
        try:
            with transaction.atomic():
                ChainCursor.objects.select_for_update().get(network_id=network.id)
                deadline = time.monotonic() + 30
                while not terminated and time.monotonic() < deadline:
                    with connection.cursor() as cursor:  # the watcher's step, waiting for the row: its connection dies
                        cursor.execute("SELECT pg_stat_clear_snapshot()")  # (else the view is frozen for the transaction)
                        cursor.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
                        )
                        terminated.extend(row[0] for row in cursor.fetchall())

                    time.sleep(0.05)
            # then a transfer the watcher must still see
            send_erc20(chain, token="usdt", to=addresses[0].address, amount=9 * 10**18)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=interfere)
    thread.start()
    err = StringIO()

    call_command("watch", "--chain", network.code, "--no-ws", "--duration", "8", stderr=err)

    thread.join(timeout=30)
    assert not errors and terminated == [True]
    transfer = Transfer.objects.get()  # the watcher lived on after its connection was killed mid-step
    assert transfer.amount_base_units == 9 * 10**18 and transfer.deposit_address_id == addresses[0].id


def test_a_zero_value_transfer_is_not_recorded(chain, network, client, addresses):
    # address-poisoning spam: transfer(ours, 0) from anyone; never a payment, never a row
    scan_until_caught_up(network, client)
    send_erc20(chain, token="usdt", to=addresses[0].address, amount=0)
    send_erc20(chain, token="usdt", to=addresses[0].address, amount=1)
    scan_until_caught_up(network, client)
    assert list(Transfer.objects.values_list("amount_base_units", flat=True)) == [1]
