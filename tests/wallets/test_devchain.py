"""The local development chain: compiling the test token, anvil, deploying and funding, the devnet row and
`manage.py devchain`. Everything runs against a real anvil on 127.0.0.1."""
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from eth_abi import encode as abi_encode
from eth_account import Account

from tests.chain import anvil_chain, free_port, register_devnet_for_tests  # noqa: F401 (fixture)
from wallets import devchain
from wallets.models import Network, Token
from wallets.networks import active_networks, seed_networks

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
MILLION_TOKENS = 1_000_000 * 10**18


# --- Compiling ----------------------------------------------------------------------------------------------------


def test_compile_writes_the_cache_once_and_then_reads_it(tmp_path, monkeypatch):
    # Given an empty build directory
    monkeypatch.setattr(devchain, "BUILD_DIR", tmp_path)
    cache = devchain.compiled_cache_path()
    assert cache.parent == tmp_path and not cache.exists()
    assert cache.name.startswith("TestToken.") and len(cache.name.split(".")[1]) == 64  # sha256 hex

    # When compiling twice
    first = devchain.compile_test_token()
    mtime = cache.stat().st_mtime_ns
    monkeypatch.setattr(devchain.subprocess, "run", _compiler_must_not_run)
    second = devchain.compile_test_token()

    # Then the second result comes from the untouched cache file
    assert second == first
    assert cache.stat().st_mtime_ns == mtime
    assert list(tmp_path.iterdir()) == [cache]
    assert first["bytecode"].startswith("0x60") and len(first["bytecode"]) > 1000
    functions = {item["name"] for item in first["abi"] if item["type"] == "function"}
    assert {"transfer", "transferFrom", "approve", "allowance", "balanceOf", "totalSupply", "decimals", "symbol",
            "name", "mint", "mintBatch", "addBlackList", "blacklist"} <= functions
    # the issuers' freezes as USDT (AddedBlackList) and USDC (Blacklisted) declare them, for the scanner's alerts
    assert {item["name"] for item in first["abi"] if item["type"] == "event"} == {
        "Transfer", "Approval", "AddedBlackList", "Blacklisted"}


def _compiler_must_not_run(*args, **kwargs):
    raise AssertionError("the compiler ran although the cache holds the artifact")


# --- Deploying and funding ------------------------------------------------------------------------------------------


def test_tokens_have_18_decimals_and_fund_the_ten_dev_accounts(anvil_chain):
    assert anvil_chain.accounts == devchain.DEV_ACCOUNTS
    assert tuple(Account.from_key(k).address.lower() for k in anvil_chain.private_keys) == anvil_chain.accounts
    assert set(anvil_chain.tokens) == {"usdt", "usdc"}
    for currency, symbol in (("usdt", "USDT"), ("usdc", "USDC")):
        token = anvil_chain.tokens[currency]
        assert token == token.lower()
        assert devchain.erc20_symbol(anvil_chain.rpc_url, token) == symbol
        assert devchain.erc20_decimals(anvil_chain.rpc_url, token) == 18
        assert devchain.erc20_total_supply(anvil_chain.rpc_url, token) == 10 * MILLION_TOKENS
        for account in anvil_chain.accounts:
            assert devchain.erc20_balance_of(anvil_chain.rpc_url, token, account) == 10**24


def test_deploying_again_reuses_the_tokens_and_mints_nothing(anvil_chain):
    url = anvil_chain.rpc_url
    nonce_before = devchain.rpc(url, "eth_getTransactionCount", [anvil_chain.accounts[0], "latest"])
    block_before = devchain.rpc(url, "eth_blockNumber")

    assert devchain.deploy_test_tokens(url) == anvil_chain.tokens
    assert devchain.deploy_test_tokens(url) == anvil_chain.tokens

    assert devchain.rpc(url, "eth_getTransactionCount", [anvil_chain.accounts[0], "latest"]) == nonce_before
    assert devchain.rpc(url, "eth_blockNumber") == block_before
    for token in anvil_chain.tokens.values():
        assert devchain.erc20_total_supply(url, token) == 10 * MILLION_TOKENS
        assert devchain.erc20_balance_of(url, token, anvil_chain.accounts[9]) == MILLION_TOKENS


def test_the_test_token_behaves_as_an_erc20_and_only_the_deployer_mints(anvil_chain):
    url, (owner, spender, receiver) = anvil_chain.rpc_url, anvil_chain.accounts[1:4]
    usdt = anvil_chain.tokens["usdt"]
    snapshot = devchain.rpc(url, "evm_snapshot")
    try:
        # A non-deployer cannot mint: nothing is minted
        with pytest.raises(devchain.DevchainError):
            _send(url, owner, usdt, "mint(address,uint256)", ["address", "uint256"], [owner, 1])
        assert devchain.erc20_total_supply(url, usdt) == 10 * MILLION_TOKENS

        # transfer, approve, transferFrom
        _send(url, owner, usdt, "transfer(address,uint256)", ["address", "uint256"], [receiver, 5])
        _send(url, owner, usdt, "approve(address,uint256)", ["address", "uint256"], [spender, 7])
        _send(url, spender, usdt, "transferFrom(address,address,uint256)",
              ["address", "address", "uint256"], [owner, receiver, 3])
        with pytest.raises(devchain.DevchainError):  # only 4 of the allowance left
            _send(url, spender, usdt, "transferFrom(address,address,uint256)",
                  ["address", "address", "uint256"], [owner, receiver, 5])

        assert devchain.erc20_balance_of(url, usdt, owner) == MILLION_TOKENS - 8
        assert devchain.erc20_balance_of(url, usdt, receiver) == MILLION_TOKENS + 8
        allowance = devchain._call(url, usdt, "allowance(address,address)", ["address", "address"],
                                   [owner, spender], ["uint256"])[0]
        assert allowance == 4
    finally:
        assert devchain.rpc(url, "evm_revert", [snapshot]) is True
    assert devchain.erc20_balance_of(url, usdt, owner) == MILLION_TOKENS


def _send(url, sender, to, signature, types, args):
    data = devchain._selector(signature) + abi_encode(types, args)
    tx_hash = devchain.rpc(url, "eth_sendTransaction", [{"from": sender, "to": to, "data": "0x" + data.hex()}])
    return devchain._wait_for_receipts(url, [tx_hash])[0]


# --- The devnet row -------------------------------------------------------------------------------------------------


def _seed_networks():
    """The networks of migration 0003, again: a transactional test that ran before may have flushed them away."""
    seed_networks(Network, Token)


def test_register_devnet_makes_it_the_active_test_mode_bsc_network(anvil_chain, db):
    # Given the seeded networks: BSC testnet is the active test-mode bsc network
    _seed_networks()
    assert Network.objects.get(code="bsc-testnet").is_active

    active_networks(livemode=False)  # warm this process's cache of the active networks

    # When registering the devnet twice
    register_devnet_for_tests(anvil_chain)
    network = register_devnet_for_tests(anvil_chain)

    # Then devnet is the one active test-mode bsc network, with the deployed tokens
    assert Network.objects.filter(code="devnet").count() == 1
    network.refresh_from_db()
    assert (network.code, network.api_name, network.display_name, network.chain_id, network.livemode,
            network.is_active, network.native_currency, network.block_time_ms, network.finality, network.rpc_env) == (
        "devnet", "bsc", "Local devnet (anvil)", 31337, False, True, "eth", 1000, "finalized", "GATEWAY_RPC_DEVNET",
    )
    assert list(Network.objects.filter(api_name="bsc", livemode=False, is_active=True)) == [network]
    assert not Network.objects.get(code="bsc-testnet").is_active
    assert Network.objects.get(code="bsc").is_active  # live mode untouched
    tokens = {t.currency: (t.contract_address, t.decimals, t.is_active) for t in Token.objects.filter(network=network)}
    assert tokens == {
        "usdt": (anvil_chain.tokens["usdt"], 18, True),
        "usdc": (anvil_chain.tokens["usdc"], 18, True),
    }
    assert active_networks(livemode=False)["bsc"].network == network  # the cache was cleared


# --- manage.py devchain ---------------------------------------------------------------------------------------------


def _command_env() -> dict:
    db = connection.settings_dict
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="gateway.settings.test")
    env["DATABASE_URL"] = (
        f"postgres://{db['USER'] or 'root'}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}"
    )
    return env


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output within {timeout} s")
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"the command exited ({process.wait()}): {process.stderr.read()}")
    return line


def test_devchain_command_starts_reuses_and_stops_the_chain(transactional_db):
    # Given the seeded networks, committed where the command's own process sees them
    _seed_networks()
    assert Network.objects.get(code="bsc-testnet").is_active
    port, env = free_port(), _command_env()
    command = [sys.executable, "manage.py", "devchain", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    first = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    anvil_pid = None
    try:
        # When the command starts the chain
        info = json.loads(_read_line(first, timeout=30))
        anvil_pid = info["anvil_pid"]

        # Then it prints the chain on one line and the tokens are live on it
        assert anvil_pid and info["reused"] is False
        assert (info["rpc_url"], info["chain_id"], info["network"], info["block_mode"]) == (
            url, 31337, "devnet", "automine")
        assert [a["address"] for a in info["accounts"]] == list(devchain.DEV_ACCOUNTS)
        assert [a["private_key"] for a in info["accounts"]] == list(devchain.DEV_PRIVATE_KEYS)
        tokens = {currency: token["address"] for currency, token in info["tokens"].items()}
        for currency, token in tokens.items():
            assert info["tokens"][currency]["decimals"] == 18
            assert devchain.erc20_symbol(url, token) == currency.upper()
            assert devchain.erc20_balance_of(url, token, devchain.DEV_ACCOUNTS[5]) == MILLION_TOKENS
        assert Network.objects.get(code="devnet").is_active
        assert not Network.objects.get(code="bsc-testnet").is_active
        assert dict(Token.objects.filter(network__code="devnet").values_list("currency", "contract_address")) == tokens

        # When it runs again on the same port without waiting
        second = subprocess.run(command + ["--no-wait"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                                timeout=30)

        # Then it reuses the running chain and its tokens
        assert second.returncode == 0, second.stderr
        lines = second.stdout.splitlines()
        assert len(lines) == 1
        again = json.loads(lines[0])
        assert again["reused"] is True and again["anvil_pid"] is None
        assert {currency: token["address"] for currency, token in again["tokens"].items()} == tokens
        assert devchain.erc20_total_supply(url, tokens["usdt"]) == 10 * MILLION_TOKENS  # not minted twice

        # When the first command gets SIGTERM
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=15) == 0, first.stderr.read()

        # Then its anvil is gone
        deadline = time.monotonic() + 5
        while devchain.process_group_alive(anvil_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not devchain.process_group_alive(anvil_pid)
        assert devchain.chain_id_at(url) is None
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        if anvil_pid and devchain.process_group_alive(anvil_pid):
            os.killpg(anvil_pid, signal.SIGKILL)
        first.stdout.close()
        first.stderr.close()
