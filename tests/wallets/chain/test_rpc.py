"""The chain watcher's RPC client against a real anvil, and against anvil behind a fault-injecting proxy."""
import logging
import pickle
import threading
import time

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3

from tests.chain import OTHER_CHAIN_ID, anvil_chain, free_port, running_other_chain  # noqa: F401
from tests.faultproxy import FaultProxy
from wallets import devchain
from wallets.chain.decode import TRANSFER_TOPIC, decode_transfer_log
from wallets.chain.rpc import RpcClient, RpcError, RpcUnavailable, mask_url
from wallets.chain.ws import subscribe_new_heads
from wallets.models import Network

TRANSFER = function_signature_to_4byte_selector("transfer(address,uint256)").hex()
MINT_BATCH = function_signature_to_4byte_selector("mintBatch(address[],uint256)").hex()
BULK_LOGS = 2400


def rpc(url, method, params=None):
    return devchain.rpc(url, method, params)


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


def wait_receipts(url, tx_hashes, timeout=10.0):
    """The receipts, once mined (anvil's automine answers eth_sendTransaction a moment before the receipt exists)."""
    deadline = time.monotonic() + timeout
    while True:
        receipts = [rpc(url, "eth_getTransactionReceipt", [h]) for h in tx_hashes]
        if all(receipts) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert all(r and r["status"] == "0x1" for r in receipts), receipts
    return receipts


@pytest.fixture(scope="module")
def chain(anvil_chain):  # noqa: F811
    """Given a few ERC-20 transfers in their own blocks (and a block of BULK_LOGS mints before them); the chain is
    reverted to its former state after the module."""
    url = anvil_chain.rpc_url
    snapshot = rpc(url, "evm_snapshot")
    try:
        sender, usdt, usdc = anvil_chain.accounts[0], anvil_chain.tokens["usdt"], anvil_chain.tokens["usdc"]

        # The bulk: mintBatch to the ten accounts over and over, in two transactions (one log per element).
        recipients = [anvil_chain.accounts[i % 10] for i in range(BULK_LOGS // 2)]
        data = "0x" + MINT_BATCH + abi_encode(["address[]", "uint256"], [recipients, 7]).hex()
        bulk = [rpc(url, "eth_sendTransaction", [{"from": sender, "to": token, "data": data}])
                for token in (usdt, usdc)]
        bulk_receipts = wait_receipts(url, bulk)
        bulk_range = (int(bulk_receipts[0]["blockNumber"], 16), int(bulk_receipts[-1]["blockNumber"], 16))

        transfers = []
        for i, (token, to) in enumerate([(usdt, 1), (usdc, 2), (usdt, 3), (usdt, 1), (usdc, 4), (usdt, 5)]):
            data = "0x" + TRANSFER + abi_encode(["address", "uint256"], [anvil_chain.accounts[to], 10**18 + i]).hex()
            transfers.append(rpc(url, "eth_sendTransaction", [{"from": sender, "to": token, "data": data}]))
        receipts = wait_receipts(url, transfers)
        first, last = int(receipts[0]["blockNumber"], 16), int(receipts[-1]["blockNumber"], 16)
        flt = {"fromBlock": hex(first), "toBlock": hex(last), "address": [usdt, usdc], "topics": [TRANSFER_TOPIC]}
        expected = rpc(url, "eth_getLogs", [flt])
        assert len(expected) == 6
        yield {
            "url": url, "port": anvil_chain.port, "first": first, "last": last, "expected": expected,
            "tokens": [usdt, usdc], "bulk_range": bulk_range, "chain": anvil_chain,
        }
    finally:
        assert rpc(url, "evm_revert", [snapshot]) is True


def logs_of(client, chain):
    return client.get_logs(chain["first"], chain["last"], chain["tokens"], [TRANSFER_TOPIC])


# --- Plain calls and batches ---------------------------------------------------------------------------------------


def test_call_and_helpers(chain):
    client = RpcClient([chain["url"]])

    assert client.chain_id() == 31337
    head = client.block_number()
    assert head >= chain["last"]
    assert client.get_block("latest")["number"] == hex(head)
    block = client.get_block(chain["last"], full_txs=True)
    assert int(block["number"], 16) == chain["last"] and isinstance(block["transactions"][0], dict)
    assert client.get_block("finalized") is not None and client.get_block("safe") is not None
    assert client.get_block(head + 1000) is None  # not mined yet: a non-lagging endpoint says so with its head
    assert logs_of(client, chain) == chain["expected"]


def test_without_the_head_guard_answers_are_taken_as_they_come(chain):
    client = RpcClient([chain["url"]], guard_head=False)

    assert logs_of(client, chain) == chain["expected"]
    assert client.get_block(10**6) is None
    assert int(client.get_block(chain["last"])["number"], 16) == chain["last"]


def test_batch_returns_results_in_order(chain):
    client = RpcClient([chain["url"]])
    calls = [("eth_getBlockByNumber", [hex(n), False]) for n in range(chain["first"], chain["last"] + 1)]
    calls += [("eth_chainId", []), ("eth_getBalance", [chain["chain"].accounts[3], "latest"])]

    results = client.batch(calls)

    assert [int(b["number"], 16) for b in results[:-2]] == list(range(chain["first"], chain["last"] + 1))
    assert results[-2] == "0x7a69"
    assert results[-1] == rpc(chain["url"], "eth_getBalance", [chain["chain"].accounts[3], "latest"])


def test_batch_element_error_is_raised_or_returned(chain):
    client = RpcClient([chain["url"]])
    calls = [("eth_chainId", []), ("eth_getBalance", ["0x12", "latest"]), ("eth_blockNumber", [])]

    with pytest.raises(RpcError) as raised:
        client.batch(calls)
    assert raised.value.code == -32602

    results = client.batch(calls, return_errors=True)
    assert results[0] == "0x7a69" and isinstance(results[1], RpcError) and int(results[2], 16) >= chain["last"]


def test_large_batch_is_split(chain):
    client = RpcClient([chain["url"]])
    client.max_batch_size = 7
    numbers = list(range(0, chain["last"] + 1))

    blocks = client.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])

    assert [int(b["number"], 16) for b in blocks] == numbers


def test_endpoint_without_batches_gets_calls_one_by_one(chain):
    with FaultProxy(chain["url"], mode="no_batch") as proxy:
        client = RpcClient([proxy.url])

        results = client.batch([("eth_chainId", []), ("eth_blockNumber", [])])
        logs = logs_of(client, chain)

    assert results[0] == "0x7a69" and int(results[1], 16) >= chain["last"]
    assert logs == chain["expected"]
    assert client.status()[0]["batch_ok"] is False


def test_request_errors_are_raised_at_once_without_failover(chain):
    with FaultProxy(chain["url"]) as proxy, FaultProxy(chain["url"]) as other:
        client = RpcClient([proxy.url, other.url])

        with pytest.raises(RpcError) as invalid:
            client.call("eth_getBalance", ["0x12", "latest"])
        # execution reverted: transfer more than the balance
        data = "0x" + TRANSFER + abi_encode(["address", "uint256"], [chain["chain"].accounts[1], 10**40]).hex()
        with pytest.raises(RpcError) as reverted:
            client.call("eth_call", [{"from": chain["chain"].accounts[9], "to": chain["tokens"][0], "data": data},
                                     "latest"])

    assert invalid.value.code == -32602 and not invalid.value.is_range_error
    assert "revert" in reverted.value.message.lower()
    assert proxy.counts["pass"] + other.counts["pass"] == 2  # one request each, no failover
    assert [s["failures"] for s in client.status()] == [0, 0]


# --- Failover --------------------------------------------------------------------------------------------------


def test_failover_when_first_endpoint_is_down(chain):
    client = RpcClient([closed_url(), chain["url"]], timeout=2)

    assert client.chain_id() == 31337
    assert logs_of(client, chain) == chain["expected"]
    down, up = client.status()
    assert down["failures"] >= 1 and down["cooldown_s"] > 0 and up["failures"] == 0


FAULTS = [
    ("drop", {}),
    ("delay", {"delay": 0.6}),
    ("http_429", {}),
    ("http_500", {}),
    ("http_502", {}),
    ("http_503", {}),
    ("rpc_error", {"rpc_error_code": -32603}),
    ("rpc_error", {"rpc_error_code": -32005}),
    ("truncate", {}),
    ("lag", {}),  # lagging below the range: an empty answer
    ("lag_partial", {}),  # lagging inside the range: a partial answer
    ("jump_back", {"jump_blocks": 10}),
]


@pytest.mark.parametrize(("mode", "options"), FAULTS, ids=[f"{m}{o.get('rpc_error_code', '')}" for m, o in FAULTS])
def test_get_logs_is_complete_under_faults(chain, mode, options):
    """Given endpoint A behind a faulty proxy (faults on half its requests) and endpoint B direct, 200 rounds of the
    scanner's loop (the head, then the logs) each see the true head and the full log list: never a partial or an
    empty one."""
    head = rpc(chain["url"], "eth_blockNumber")
    if mode == "lag":
        options = {"lag_blocks": int(head, 16) - chain["first"] + 1}  # A's head is below the range
    elif mode == "lag_partial":
        mode, options = "lag", {"lag_blocks": int(head, 16) - chain["first"] - 2}  # A's head inside the range
    slow = mode == "delay"
    with FaultProxy(chain["url"], seed=7, mode=mode, probability=0.5, **options) as proxy:
        client = RpcClient(
            [proxy.url, chain["url"]], timeout=0.3, name=mode,
            cooldown_base=0.05 if slow else 0.002, cooldown_cap=0.2 if slow else 0.01, head_probe_interval=0,
            health_half_life=1e-4, demote_seconds=1e-3,  # A's failures fade at once: it meets many faults
        )
        heads, answers = [], []
        for _ in range(200):
            heads.append(client.block_number())
            answers.append(logs_of(client, chain))

    assert set(heads) <= set(range(int(head, 16) - client.max_lag_blocks, int(head, 16) + 1))  # lag within bounds
    assert all(answer == chain["expected"] for answer in answers)
    assert proxy.counts[mode] >= (2 if slow else 20), proxy.counts  # the faults were really met


def test_one_client_shared_by_threads_under_faults(chain):
    with FaultProxy(chain["url"], seed=3, mode="http_503", probability=0.5) as proxy:
        client = RpcClient([proxy.url, chain["url"]], cooldown_base=0.002, cooldown_cap=0.01, health_half_life=1e-4)
        results, errors = [], []

        def scan():
            try:
                for _ in range(40):
                    results.append(logs_of(client, chain))
            except Exception as exc:  # noqa: BLE001 - the assertion below shows it
                errors.append(exc)

        threads = [threading.Thread(target=scan) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert errors == [] and len(results) == 160
    assert all(result == chain["expected"] for result in results)
    assert proxy.counts["http_503"] >= 5


def test_both_endpoints_failing_raise_unavailable_in_bounded_time(chain):
    with FaultProxy(chain["url"], mode="http_503") as failing, FaultProxy(chain["url"], mode="delay",
                                                                          delay=5) as hanging:
        for urls in ([closed_url(), failing.url], [failing.url, hanging.url]):
            client = RpcClient(urls, timeout=0.3)
            started = time.monotonic()
            with pytest.raises(RpcUnavailable):
                logs_of(client, chain)
            assert time.monotonic() - started < 3.5
            with pytest.raises(RpcUnavailable):
                client.block_number()


def test_lagging_endpoint_alone_is_never_believed_beyond_its_head(chain):
    head = int(rpc(chain["url"], "eth_blockNumber"), 16)
    with FaultProxy(chain["url"], mode="lag", lag_blocks=head - chain["first"] + 1) as proxy:
        client = RpcClient([proxy.url], retry_budget=0.5)

        assert rpc(proxy.url, "eth_getLogs", [{"fromBlock": hex(chain["first"]), "toBlock": hex(chain["last"])}]) \
            == []  # what the lagging node says
        with pytest.raises(RpcUnavailable):
            logs_of(client, chain)
        assert client.get_logs(0, chain["first"] - 1, chain["tokens"], [TRANSFER_TOPIC])  # below its head: fine


def test_lagging_endpoint_is_demoted_and_heads_are_visible(chain):
    head = int(rpc(chain["url"], "eth_blockNumber"), 16)
    with FaultProxy(chain["url"], mode="lag", lag_blocks=8) as proxy:
        client = RpcClient([proxy.url, chain["url"]], head_probe_interval=0, max_lag_blocks=5)

        assert client.block_number() == head
        heads = client.heads()
        assert heads[proxy.url] == head - 8 and heads[chain["url"]] == head
        lagging = {s["endpoint"]: s["lagging"] for s in client.status()}
        assert lagging == {proxy.url: True, chain["url"]: False}
        proxy.reset_counts()
        assert logs_of(client, chain) == chain["expected"]
        assert sum(proxy.counts.values()) == 0  # the healthy endpoint was asked first


def test_get_blocks_in_order_and_never_from_a_lagging_endpoint(chain):
    head = int(rpc(chain["url"], "eth_blockNumber"), 16)
    numbers = list(range(head - 9, head + 3))  # the last two are not mined yet
    with FaultProxy(chain["url"], mode="lag", lag_blocks=3) as proxy:  # within max_lag_blocks: not demoted
        client = RpcClient([proxy.url, chain["url"]], head_probe_interval=0, max_lag_blocks=5)
        client.max_batch_size = 5
        assert client.block_number() == head - 3  # the proxy's head: first in line, and close enough

        blocks = client.get_blocks(numbers)
        single = client.get_block(head - 1)
        assert sum(proxy.counts.values()) > 1  # the proxy was asked, its nulls not believed

    assert [int(b["number"], 16) for b in blocks[:-2]] == numbers[:-2] and blocks[-2:] == [None, None]
    assert int(single["number"], 16) == head - 1
    assert [b["hash"] for b in blocks[:-2]] == [
        rpc(chain["url"], "eth_getBlockByNumber", [hex(n), False])["hash"] for n in numbers[:-2]]


def test_head_jumping_back_demotes_the_endpoint(chain):
    head = int(rpc(chain["url"], "eth_blockNumber"), 16)
    with FaultProxy(chain["url"]) as proxy:
        client = RpcClient([proxy.url, chain["url"]], head_probe_interval=0)
        assert client.block_number() == head
        proxy.set_mode("jump_back", probability=1.0, jump_blocks=8)

        assert client.block_number() == head  # the other endpoint's head, not head - 10
        assert client.status()[0]["rewound"] is True


def test_endpoint_refusing_a_method_is_skipped_for_it(chain):
    with FaultProxy(chain["url"], mode="rpc_error", rpc_error_code=-32601, rpc_error_methods={"eth_getLogs"},
                    rpc_error_message="the method eth_getLogs does not exist/is not available") as proxy:
        client = RpcClient([proxy.url, chain["url"]])

        assert [logs_of(client, chain) for _ in range(3)] == [chain["expected"]] * 3
        assert proxy.counts["rpc_error"] == 1  # asked once, then remembered
        assert client.chain_id() == 31337 and client.status()[0]["failures"] == 0

        alone = RpcClient([proxy.url])
        with pytest.raises(RpcError) as raised:
            logs_of(alone, chain)
        assert raised.value.code == -32601


# --- Range errors, masking, configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(("message", "suggested"), [
    ("query returned more than 10000 results. Try with this block range [0x1, 0x2].", (1, 2)),
    ("query returned more than 10000 results. Try with this block range [0x2B3C10, 0x2B3E2F].", (0x2B3C10, 0x2B3E2F)),
    ("block range is too wide", None),
    ("exceed maximum block range: 5000", None),
    ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the "
     "response size, or you can request any block range with a cap of 10K logs in the response. Based on your "
     "parameters, this block range should work: [0x10, 0x7cf]", (0x10, 0x7CF)),
    ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the "
     "response size, or you can request any block range with a cap of 10K logs in the response", None),
    ("limit exceeded", None),
])
def test_range_errors_are_recognised(message, suggested):
    error = RpcError(-32005, message)

    assert error.is_range_error
    assert error.suggested_range == suggested


def test_range_error_helpers_and_non_range_errors():
    error = pickle.loads(pickle.dumps(RpcError(-32005, "block range is too wide", {"x": 1}, method="eth_getLogs")))
    assert (error.code, error.message, error.data, error.method) == (-32005, "block range is too wide", {"x": 1},
                                                                     "eth_getLogs")
    assert RpcError(-32000, "exceed maximum block range: 5000").max_block_span() == 5000
    assert RpcError(-32602, "Log response size exceeded ... up to a 2K block range ...").max_block_span() == 2000
    for message in ("invalid params", "execution reverted", "Rate limit exceeded", "daily request count exceeded"):
        assert not RpcError(-32005, message).is_range_error, message


def test_range_error_from_the_node_is_raised_at_once(chain):
    with FaultProxy(chain["url"]) as proxy:
        client = RpcClient([proxy.url, chain["url"]])
        proxy.set_mode("rpc_error", rpc_error_code=-32005, rpc_error_methods={"eth_getLogs"}, rpc_error_message=(
            "query returned more than 10000 results. Try with this block range [0x1, 0x2]."))

        with pytest.raises(RpcError) as raised:
            logs_of(client, chain)

    assert raised.value.suggested_range == (1, 2)
    assert sum(proxy.counts.values()) == 1


def test_rpc_urls_are_masked_in_logs_and_errors(chain, caplog):
    secret_url = f"http://alice:pa55word@127.0.0.1:{free_port()}/v3/SECRETKEY0123?apikey=QUERYSECRET"
    with FaultProxy(chain["url"], mode="truncate") as proxy:
        truncating = f"{proxy.url}/rpc/OTHERSECRET42"
        client = RpcClient([secret_url, truncating], name="masking")
        with caplog.at_level(logging.DEBUG):  # urllib3 too: it logs the request path at DEBUG
            with pytest.raises(RpcUnavailable) as raised:
                client.call("eth_chainId")

    shown = caplog.text + str(raised.value) + repr(client) + str(client.status()) + str(client.heads())
    assert "failed" in caplog.text and '"POST *** HTTP/1.1" 200' in caplog.text
    for secret in ("SECRETKEY0123", "QUERYSECRET", "alice", "pa55word", "OTHERSECRET42", "/v3/", "/rpc/"):
        assert secret not in shown
    assert mask_url(secret_url).endswith("/***") and mask_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"


def test_for_network_reads_the_environment(monkeypatch, settings):
    env = "GATEWAY_RPC_TEST_RPC_AGENT"
    monkeypatch.delenv(env, raising=False)
    settings.GATEWAY_DEVCHAIN_RPC_URL = "http://127.0.0.1:18545"
    devnet = Network(code="devnet", rpc_env=env)
    bsc = Network(code="bsc", rpc_env=env, chain_id=56)

    assert [e.url for e in RpcClient.for_network(devnet).endpoints] == ["http://127.0.0.1:18545"]
    with pytest.raises(ImproperlyConfigured):
        RpcClient.for_network(bsc)

    monkeypatch.setenv(env, " http://127.0.0.1:1/a , http://127.0.0.1:2/b,")
    client = RpcClient.for_network(bsc)
    assert [e.url for e in client.endpoints] == ["http://127.0.0.1:1/a", "http://127.0.0.1:2/b"]
    assert RpcClient.for_network(bsc) is client  # one client (pools, health) per process and network
    assert client.expected_chain_id == 56  # every endpoint is checked against the network's chain id
    assert RpcClient.for_network(bsc, timeout=1).expected_chain_id == 56
    assert RpcClient(["http://127.0.0.1:1"]).expected_chain_id is None  # URLs without a network: no check


# --- The chain id of every endpoint --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_chain():
    with running_other_chain() as url:
        yield url


def test_an_endpoint_on_another_chain_is_excluded_and_never_used(chain, other_chain, caplog):
    with FaultProxy(other_chain) as wrong:  # counts the requests the wrong chain gets
        wrong_url = f"{wrong.url}/v3/WRONGCHAINKEY42"
        client = RpcClient([wrong_url, chain["url"]], name="mixed", expected_chain_id=31337)
        with caplog.at_level(logging.INFO):
            assert client.chain_id() == 31337
            assert client.block_number() == int(rpc(chain["url"], "eth_blockNumber"), 16)
            assert logs_of(client, chain) == chain["expected"]
            assert client.get_block(chain["last"])["number"] == hex(chain["last"])
            assert client.get_blocks([chain["first"], chain["last"]])[1]["number"] == hex(chain["last"])
            assert client.batch([("eth_chainId", []), ("eth_chainId", [])]) == ["0x7a69", "0x7a69"]
            assert client.refresh_heads()[mask_url(wrong_url)] is None

        assert sum(wrong.counts.values()) == 1  # its eth_chainId, nothing else
    excluded, used = client.status()
    assert excluded["excluded"] and excluded["calls"] == 0 and excluded["head"] is None
    assert not used["excluded"] and used["calls"] >= 7
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1  # once, not per call
    message = critical[0].getMessage()
    assert mask_url(wrong_url) in message and str(OTHER_CHAIN_ID) in message and "31337" in message
    assert "WRONGCHAINKEY42" not in caplog.text


def test_endpoints_are_checked_once_by_concurrent_threads(chain, other_chain):
    with FaultProxy(other_chain) as wrong, FaultProxy(chain["url"]) as right:
        client = RpcClient([wrong.url, right.url], expected_chain_id=31337)
        barrier = threading.Barrier(8)
        answers, errors = [], []

        def work():
            try:
                barrier.wait()
                answers.append(client.call("eth_chainId"))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors and answers == ["0x7a69"] * 8
        assert sum(wrong.counts.values()) == 1
        assert sum(right.counts.values()) == 8 + 1  # eight calls and one check


def test_only_endpoint_on_another_chain_raises_unavailable(other_chain):
    with FaultProxy(other_chain) as wrong:
        client = RpcClient([wrong.url], expected_chain_id=31337, retry_budget=5.0)
        began = time.monotonic()
        for call in (client.block_number, lambda: client.get_logs(0, 0, None, [TRANSFER_TOPIC]),
                     lambda: client.call("eth_chainId")):
            with pytest.raises(RpcUnavailable, match="another chain"):
                call()
        assert time.monotonic() - began < 1.0  # no retries, no backoff: it will never be the right chain
        assert sum(wrong.counts.values()) == 1
    unchecked = RpcClient([other_chain])  # URLs without a network: no check
    assert unchecked.chain_id() == OTHER_CHAIN_ID


def test_an_endpoint_coming_back_as_another_chain_is_excluded(chain, other_chain, caplog):
    with FaultProxy(chain["url"]) as flaky:
        client = RpcClient([flaky.url, chain["url"]], expected_chain_id=31337, cooldown_base=0.01, cooldown_cap=0.01)
        assert client.call("eth_blockNumber") and client.status()[0]["calls"] == 1
        flaky.set_mode("http_503")
        client.call("eth_blockNumber")  # fails over; the first one cools down
        assert client.status()[0]["failures"] == 1
        # It comes back, now serving another chain (a devnet reset with another chain id, a testnet).
        flaky.upstream_port = int(other_chain.rsplit(":", 1)[1])
        flaky.set_mode("pass")
        time.sleep(0.05)
        flaky.reset_counts()
        with caplog.at_level(logging.CRITICAL):
            for _ in range(3):
                assert client.call("eth_chainId") == "0x7a69"
        assert client.status()[0]["excluded"] and sum(flaky.counts.values()) == 1


# --- Decoding ------------------------------------------------------------------------------------------------------


TRANSFER_ABI = [{
    "anonymous": False, "name": "Transfer", "type": "event",
    "inputs": [{"indexed": True, "name": "from", "type": "address"},
               {"indexed": True, "name": "to", "type": "address"},
               {"indexed": False, "name": "value", "type": "uint256"}],
}]


def test_decode_transfer_log_equals_web3(chain):
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1 only, never an environment proxy
    w3 = Web3(Web3.HTTPProvider(chain["url"], session=session))
    event = w3.eth.contract(abi=TRANSFER_ABI).events.Transfer()
    web3_logs = w3.eth.get_logs({"fromBlock": chain["first"], "toBlock": chain["last"],
                                 "address": [Web3.to_checksum_address(t) for t in chain["tokens"]]})

    ours = [decode_transfer_log(log) for log in logs_of(RpcClient([chain["url"]]), chain)]

    theirs = []
    for log in web3_logs:
        decoded = event.process_log(log)
        theirs.append((decoded.address.lower(), decoded.args["from"].lower(), decoded.args["to"].lower(),
                       decoded.args["value"], decoded.blockNumber, decoded.blockHash.to_0x_hex(),
                       decoded.transactionHash.to_0x_hex(), decoded.logIndex))
    assert ours == theirs and len(ours) == 6
    assert ours[0][3] == 10**18


def test_decode_transfer_log_refuses_non_standard_logs(chain):
    log = dict(chain["expected"][0])
    assert decode_transfer_log(log) is not None

    assert decode_transfer_log({**log, "topics": log["topics"] + ["0x" + "00" * 31 + "05"], "data": "0x"}) is None
    assert decode_transfer_log({**log, "topics": log["topics"][:1]}) is None
    assert decode_transfer_log({**log, "topics": []}) is None
    assert decode_transfer_log({k: v for k, v in log.items() if k != "topics"}) is None
    assert decode_transfer_log({**log, "topics": ["0x" + "11" * 32] + log["topics"][1:]}) is None  # another event
    assert decode_transfer_log({**log, "data": "0x"}) is None
    assert decode_transfer_log({**log, "blockNumber": None}) is None  # pending


def test_get_logs_and_decode_throughput(chain):
    """Printed, not asserted: logs/s of get_logs + decode over a range of >= 2,000 Transfer logs."""
    client = RpcClient([chain["url"]])
    low, high = chain["bulk_range"]
    logs = client.get_logs(low, high, chain["tokens"], [TRANSFER_TOPIC])
    assert len(logs) == BULK_LOGS and all(decode_transfer_log(log) for log in logs)

    rounds, started = 10, time.perf_counter()
    for _ in range(rounds):
        decoded = [decode_transfer_log(log) for log in client.get_logs(low, high, chain["tokens"], [TRANSFER_TOPIC])]
    elapsed = time.perf_counter() - started
    assert len(decoded) == BULK_LOGS
    print(f"\nget_logs + decode: {rounds * BULK_LOGS / elapsed:,.0f} logs/s ({BULK_LOGS} logs per call, "
          f"{elapsed / rounds * 1000:.1f} ms per call)")


# --- WebSocket newHeads ------------------------------------------------------------------------------------------


def test_new_heads_wake_within_a_second_of_a_block(chain):
    subscribed, got_head, heads = threading.Event(), threading.Event(), []
    stop = threading.Event()

    def on_head(number, block_hash):
        heads.append((number, block_hash, time.monotonic()))
        got_head.set()

    thread = threading.Thread(
        target=subscribe_new_heads, args=(f"ws://127.0.0.1:{chain['port']}", on_head, stop),
        kwargs={"on_subscribed": subscribed.set}, daemon=True,
    )
    thread.start()
    try:
        assert subscribed.wait(5)
        mined_at = time.monotonic()
        rpc(chain["url"], "evm_mine")
        assert got_head.wait(1.0)
        block = rpc(chain["url"], "eth_getBlockByNumber", ["latest", False])
        number, block_hash, seen_at = heads[0]
        assert (number, block_hash) == (int(block["number"], 16), block["hash"])
        assert seen_at - mined_at < 1.0
    finally:
        stop.set()
        thread.join(3)
    assert not thread.is_alive()


def test_new_heads_keeps_retrying_and_stops_when_told():
    stop = threading.Event()
    thread = threading.Thread(target=subscribe_new_heads,
                              args=(f"ws://127.0.0.1:{free_port()}", lambda n, h: None, stop), daemon=True)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # reconnecting with backoff, not crashed
    stop.set()
    thread.join(2)
    assert not thread.is_alive()

