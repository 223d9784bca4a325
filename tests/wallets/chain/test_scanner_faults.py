"""The scanner over a faulty provider: two RPC endpoints for the devnet, the first behind a fault-injecting proxy that
cycles through every fault it knows (dropped connections, delays past the timeout, 429 / 5xx, JSON-RPC errors,
truncated JSON, a lagging node, a head that jumps back, no batch support) while transfers go to our addresses.

Whatever the faults, the scanner must end caught up with the node, with every transfer recorded exactly once (the
chain's own logs, fetched directly, are the reference), no block skipped (each step starts right after the previous
cursor, the stored hash chain is the node's) and nothing counted twice or orphaned (there was no reorg).
"""
import random
import time

import pytest

from gateway.celery import app as celery_app
from tests.chain import register_devnet_for_tests, running_anvil
from tests.faultproxy import FaultProxy
from wallets.chain import scanner
from wallets.chain.rpc import RpcClient
from wallets.chain.scanner import Status, log_ranges_forget, network_scan, scan_step
from wallets.chain.selectors import chain_cursor_get
from wallets.devchain import rpc
from wallets.models import AddressActivity, ScannedBlock, Transfer
from wallets.services import deposit_address_allocate

STRANGER = "0x" + "ab" * 20

# Every mode of the proxy, with how often it strikes while it is on (lag: a node steadily behind, so always).
FAULTS = [
    ("drop", 0.6, {}),
    ("delay", 0.5, {"delay": 1.2}),
    ("http_429", 0.7, {}),
    ("http_500", 0.7, {}),
    ("http_502", 0.7, {}),
    ("http_503", 0.7, {}),
    ("rpc_error", 0.7, {"rpc_error_code": -32603}),
    ("rpc_error", 0.7, {"rpc_error_code": -32005}),
    ("truncate", 0.6, {}),
    ("lag", 1.0, {"lag_blocks": 4}),
    ("jump_back", 0.5, {"jump_blocks": 6}),
    ("no_batch", 1.0, {}),
]


@pytest.fixture(scope="module")
def chain():
    with running_anvil() as anvil:
        yield anvil


@pytest.fixture
def network(chain, transactional_db, monkeypatch):
    monkeypatch.setattr(celery_app, "send_task", lambda *a, **kw: None)
    log_ranges_forget()
    network = register_devnet_for_tests(chain)
    network.max_log_range = 3  # many small steps: the faults land on every kind of request
    network.save(update_fields=["max_log_range"])
    yield network
    log_ranges_forget()


def head(chain) -> int:
    return int(rpc(chain.rpc_url, "eth_blockNumber"), 16)


def send_erc20(chain, *, token: str, to: str, amount: int, sender: int) -> dict:
    data = "0xa9059cbb" + to[2:].rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [{"from": chain.accounts[sender], "to": chain.tokens[token],
                                                           "data": data}])
    deadline = time.monotonic() + 30
    while (receipt := rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash])) is None:
        assert time.monotonic() < deadline, f"{tx_hash} not mined"
        time.sleep(0.02)
    assert receipt["status"] == "0x1"
    return receipt


def canonical_transfers(chain, *, first: int, ours: set[str]) -> set[tuple]:
    """(tx hash, log index, block hash) of every token Transfer to `ours` from block `first` on, straight from the
    node (no proxy, no scanner code)."""
    logs = rpc(chain.rpc_url, "eth_getLogs", [{"fromBlock": hex(first), "toBlock": "latest",
                                               "address": list(chain.tokens.values())}])
    return {(log["transactionHash"], int(log["logIndex"], 16), log["blockHash"]) for log in logs
            if "0x" + log["topics"][2][26:] in ours}


@pytest.mark.slow
def test_every_fault_of_one_endpoint_and_the_scanner_still_records_each_transfer_exactly_once(
    chain, network, merchant, wallet
):
    addresses = [deposit_address_allocate(merchant=merchant) for _ in range(4)]
    ours = {a.address for a in addresses}
    rng = random.Random(20261202)
    clean = RpcClient([chain.rpc_url], name="clean")
    network_scan(network=network, client=clean, budget_seconds=30)
    start = chain_cursor_get(network=network).block_number
    assert start == head(chain)

    steps = []
    with FaultProxy(chain.rpc_url, seed=3) as proxy:
        client = RpcClient(
            [proxy.url, chain.rpc_url], name="faulty", timeout=0.5, retry_budget=2.0, cooldown_base=0.05,
            cooldown_cap=0.3, head_probe_interval=0.2, demote_seconds=0.5, health_half_life=0.5,
        )
        amount = 10**18
        for mode, probability, options in FAULTS:
            proxy.set_mode(mode, probability=probability, **options)
            # transfers to our addresses (and one to a stranger) in blocks of their own, and empty blocks
            for _ in range(3):
                amount += 1
                to = rng.choice([*sorted(ours), STRANGER])
                send_erc20(chain, token=rng.choice(["usdt", "usdc"]), to=to, amount=amount, sender=rng.randint(1, 8))
            rpc(chain.rpc_url, "anvil_mine", [hex(rng.randint(0, 3))])
            # step until the fault struck a few times (the client shuns a failing endpoint for a while, so this
            # may take more steps than faults), with a block now and then so that steps have work to do
            struck = proxy.counts[mode]
            for i in range(200):
                steps.append(scan_step(network=network, client=client))
                if i >= 3 and proxy.counts[mode] - struck >= 5:
                    break
                if i % 4 == 3:
                    rpc(chain.rpc_url, "anvil_mine", ["0x1"])
                if steps[-1].back_off:
                    time.sleep(0.05)
        proxy.set_mode("pass")
        rpc(chain.rpc_url, "anvil_mine", [hex(3)])  # everything sent is final (finalized = head - 2)
        deadline = time.monotonic() + 120
        while True:
            step = scan_step(network=network, client=client)
            steps.append(step)
            if step.caught_up and step.cursor == head(chain) and not Transfer.objects.filter(finalized_at=None).exists():
                break
            assert time.monotonic() < deadline, f"not caught up: {step}"
            if step.back_off:
                time.sleep(0.2)
        counts = dict(proxy.counts)

    # Every fault really happened
    assert {mode for mode, _, _ in FAULTS} <= set(counts), counts
    statuses = [s.status for s in steps]
    assert Status.ERROR not in statuses, [s for s in steps if s.status == Status.ERROR]
    assert Status.SCANNED in statuses

    # Caught up with the node
    cursor = chain_cursor_get(network=network)
    assert cursor.block_number == head(chain) and cursor.lag == 0

    # Each transfer of the chain to our addresses recorded exactly once; none orphaned, all final
    expected = canonical_transfers(chain, first=start + 1, ours=ours)
    assert len(expected) >= 20
    rows = list(Transfer.objects.values_list("tx_hash", "log_index", "block_hash", "orphaned_at", "finalized_at"))
    assert len(rows) == len(expected)
    assert {r[:3] for r in rows} == expected
    assert all(r[3] is None and r[4] is not None for r in rows)
    assert len(set(Transfer.objects.values_list("amount_base_units", flat=True))) == len(rows)  # each amount once

    # No block skipped: every range starts right after the cursor the previous step left, and no step went back
    position = start
    for step in steps:
        assert step.reorg_depth == 0, step
        if step.status == Status.SCANNED:
            assert step.from_block == position + 1, (position, step)
            assert step.to_block >= step.from_block
            position = step.to_block
        if step.cursor is not None:
            assert step.cursor == position, (position, step)
    assert position == cursor.block_number
    # The stored hash chain is the node's own, and links up to the cursor's block
    stored = list(ScannedBlock.objects.filter(network=network).order_by("number").values_list("number", "hash",
                                                                                             "parent_hash"))
    assert stored and stored[-1][:2] == (cursor.block_number, cursor.block_hash)
    for number, block_hash, parent_hash in stored:
        block = rpc(chain.rpc_url, "eth_getBlockByNumber", [hex(number), False])
        assert (block["hash"], block["parentHash"]) == (block_hash, parent_hash)
    # And the queue names only our addresses that received something
    assert set(AddressActivity.objects.values_list("deposit_address__address", flat=True)) == {
        t[0] for t in Transfer.objects.values_list("to_address")}
