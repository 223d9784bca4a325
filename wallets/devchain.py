"""The local development chain: anvil on 127.0.0.1, two test stablecoins, and the `devnet` row that points at them.

`manage.py devchain` and the test suite (`tests/chain.py`) drive these functions; nothing here talks to any host
but 127.0.0.1. Everything is safe to run twice: the tokens sit at the deterministic CREATE addresses of anvil's
first account (nonces 0 and 1), so a second run finds them there and neither deploys nor mints again.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.db import transaction
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector

from wallets.models import Network, Token
from wallets.networks import clear_network_cache, rpc_env_name
from wallets.sweeper import create_address  # noqa: F401 (devchain.create_address: the tokens' addresses)

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACT_SOURCE = REPO_ROOT / "contracts" / "TestToken.sol"
CONTRACT_NAME = "TestToken"
BUILD_DIR = REPO_ROOT / "build" / "contracts"
SOLCJS = REPO_ROOT / "node_modules" / "solc" / "solc.js"
SOLC_PACKAGE_JSON = REPO_ROOT / "node_modules" / "solc" / "package.json"
ANVIL_BIN = REPO_ROOT / "node_modules" / ".bin" / "anvil"
SETUP_COMMAND = "make setup"  # scripts/setup.sh installs the pinned anvil and solc of package-lock.json

SOLC_SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "prague",
    "outputSelection": {"*": {CONTRACT_NAME: ["abi", "evm.bytecode.object"]}},
}

CHAIN_ID = 31337
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEVNET_CODE = "devnet"
DEVNET_API_NAME = "bsc"

# anvil's default accounts: the mnemonic "test test test test test test test test test test test junk",
# m/44'/60'/0'/0/0..9. Public, well-known development keys; never fund them on a real network.
DEV_PRIVATE_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
DEV_ACCOUNTS = tuple(Account.from_key(key).address.lower() for key in DEV_PRIVATE_KEYS)
FUNDED_ACCOUNT_COUNT = 10


@dataclass(frozen=True)
class DevTokenSpec:
    currency: str
    name: str
    symbol: str
    decimals: int
    deployer_nonce: int  # the tokens live at the CREATE addresses of account 0 for these nonces
    mint_whole_tokens: int = 1_000_000

    @property
    def mint_base_units(self) -> int:
        return self.mint_whole_tokens * 10**self.decimals


TEST_TOKENS = (
    DevTokenSpec(currency="usdt", name="Tether USD (test)", symbol="USDT", decimals=18, deployer_nonce=0),
    DevTokenSpec(currency="usdc", name="USD Coin (test)", symbol="USDC", decimals=18, deployer_nonce=1),
)


class DevchainError(Exception):
    """The local chain cannot be started, reached or set up; the message says what to do."""


class RpcError(DevchainError):
    def __init__(self, *, method: str, code: int, message: str, data=None):
        self.method, self.code, self.data = method, code, data
        super().__init__(f"{method}: JSON-RPC error {code}: {message}")


# --- JSON-RPC ----------------------------------------------------------------------------------------------------


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never route 127.0.0.1 through a proxy


def rpc(url: str, method: str, params: list | None = None, *, timeout: float = 10.0):
    """One JSON-RPC call to a node on this machine; returns `result` or raises RpcError / OSError."""
    host = urlsplit(url).hostname
    if host not in LOCAL_HOSTS:
        raise ValueError(f"the devchain RPC helper only talks to 127.0.0.1, not {host!r}")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with _opener.open(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if reply.get("error"):
        error = reply["error"]
        raise RpcError(method=method, code=error.get("code", 0), message=error.get("message", ""),
                       data=error.get("data"))
    return reply["result"]


def local_rpc_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def chain_id_at(url: str, *, timeout: float = 2.0) -> int | None:
    """The chain id of the node answering at `url`, or None when nothing answers JSON-RPC there."""
    try:
        return int(rpc(url, "eth_chainId", timeout=timeout), 16)
    except (OSError, ValueError, RpcError):
        return None


# --- Compiling --------------------------------------------------------------------------------------------------


def _solc_version() -> str:
    try:
        return json.loads(SOLC_PACKAGE_JSON.read_text())["version"]
    except FileNotFoundError:
        raise DevchainError(f"solc is not installed ({SOLC_PACKAGE_JSON} missing): run `{SETUP_COMMAND}`") from None


def _solc_settings(contract_name: str) -> dict:
    return {**SOLC_SETTINGS, "outputSelection": {"*": {contract_name: ["abi", "evm.bytecode.object"]}}}


def compiled_cache_path(source: Path = CONTRACT_SOURCE, contract_name: str = CONTRACT_NAME) -> Path:
    """build/contracts/<Name>.<sha256 of source + solc version + settings>.json"""
    digest = hashlib.sha256()
    digest.update(source.read_bytes())
    digest.update(b"\0solc " + _solc_version().encode())
    digest.update(b"\0" + json.dumps(_solc_settings(contract_name), sort_keys=True).encode())
    return BUILD_DIR / f"{contract_name}.{digest.hexdigest()}.json"


def compile_test_token() -> dict:
    """{"abi": [...], "bytecode": "0x..."} of contracts/TestToken.sol, compiled once per source and solc version."""
    return compile_contract(CONTRACT_SOURCE, CONTRACT_NAME)


def compile_contract(source: Path, contract_name: str) -> dict:
    """{"abi": [...], "bytecode": "0x..."} of the contract `contract_name` of the single-file `source` (contracts/),
    compiled by the pinned solc once per source, solc version and settings (cached in build/contracts/)."""
    cache = compiled_cache_path(source, contract_name)
    if cache.exists():
        return json.loads(cache.read_text())

    node = shutil.which("node")
    if node is None or not SOLCJS.exists():
        raise DevchainError(f"node and the pinned solc are needed to compile {source.name}: run `{SETUP_COMMAND}`")
    standard_input = {
        "language": "Solidity",
        "sources": {source.name: {"content": source.read_text()}},
        "settings": _solc_settings(contract_name),
    }
    completed = subprocess.run(
        [node, str(SOLCJS), "--standard-json"], input=json.dumps(standard_input), capture_output=True, text=True,
        cwd=REPO_ROOT, timeout=120,
    )
    if completed.returncode != 0:
        raise DevchainError(f"solcjs failed ({completed.returncode}): {completed.stderr.strip()}")
    output = _parse_solc_output(completed.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise DevchainError(f"{source.name} does not compile:\n" + "\n".join(e["formattedMessage"] for e in errors))
    contract = output["contracts"][source.name][contract_name]
    artifact = {"abi": contract["abi"], "bytecode": "0x" + contract["evm"]["bytecode"]["object"]}

    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent reader (another test worker) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=BUILD_DIR, prefix=f".{contract_name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(artifact, f)
    os.replace(tmp, cache)
    return artifact


def _parse_solc_output(stdout: str) -> dict:
    # solcjs prints notes such as ">>> Cannot retry compilation with SMT ..." on stdout before the JSON.
    start = stdout.find("{")
    if start < 0:
        raise DevchainError(f"solcjs printed no JSON: {stdout.strip()[:500]}")
    output, _ = json.JSONDecoder().raw_decode(stdout[start:])
    return output


# --- anvil ------------------------------------------------------------------------------------------------------


def anvil_command(port: int, block_time: float | None = None, *, chain_id: int = CHAIN_ID,
                  state: Path | None = None) -> list[str]:
    """With `state`, the chain is loaded from that file when it exists and written back every few seconds and on
    exit (anvil's --state), so a restarted chain goes on where it stopped, as the database that describes it does."""
    command = [
        str(ANVIL_BIN), "--host", "127.0.0.1", "--port", str(port), "--hardfork", "prague",
        "--slots-in-an-epoch", "1", "--chain-id", str(chain_id), "--silent",
    ]
    if state is not None:
        command += ["--state", str(state), "--state-interval", "5", "--preserve-historical-states"]
    if block_time is not None:
        if block_time <= 0:
            raise ValueError("block_time must be positive (or None for one block per transaction)")
        command += ["--block-time", f"{block_time:g}"]
    return command


def start_anvil(port: int, block_time: float | None = None, *, timeout: float = 20.0,
                chain_id: int = CHAIN_ID, state: Path | None = None) -> subprocess.Popen:
    """Start anvil on 127.0.0.1:`port` in its own session (kill it with `stop_anvil`) and wait until it answers.
    `chain_id`: another chain than the devchain's (tests of a misconfigured RPC URL)."""
    if not ANVIL_BIN.exists() or shutil.which("node") is None:
        raise DevchainError(f"anvil is not installed ({ANVIL_BIN} missing or no node on PATH): run `{SETUP_COMMAND}`")
    # Output to a file, not a pipe: nobody reads it while anvil runs, and a full pipe would block the node.
    log = tempfile.TemporaryFile()
    try:
        process = subprocess.Popen(
            anvil_command(port, block_time, chain_id=chain_id, state=state), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=log, cwd=REPO_ROOT, start_new_session=True,
        )
    except OSError as exc:
        log.close()
        raise DevchainError(f"cannot run {ANVIL_BIN} ({exc}): run `{SETUP_COMMAND}`") from exc

    url = local_rpc_url(port)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace").strip()
            log.close()
            raise DevchainError(f"anvil stopped before answering on {url} (exit status {process.returncode}): {output}")
        answered = chain_id_at(url, timeout=1.0)
        if answered == chain_id:
            return process
        if answered is not None:
            stop_anvil(process)
            raise DevchainError(f"another chain (id {answered}) already answers on {url}")
        if time.monotonic() > deadline:
            stop_anvil(process)
            raise DevchainError(f"anvil did not answer on {url} within {timeout:g} s")
        time.sleep(0.05)


def stop_anvil(process: subprocess.Popen, *, timeout: float = 5.0) -> None:
    """Terminate anvil: the npm wrapper and the native binary it spawns (one process group, thanks to
    start_new_session). SIGTERM first, SIGKILL for whatever is still there after `timeout` seconds."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    while process_group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def process_group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: the native anvil is orphaned when the
    wrapper exits, and a container's init may take a second or two to reap it."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: the signal test is the best there is
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, process_group = fields[0], int(fields[2])
        if process_group == pgid and state not in ("Z", "X"):
            return True
    return False


# --- Contract calls ---------------------------------------------------------------------------------------------


def _selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


def _call(url: str, to: str, signature: str, arg_types: list[str], args: list, result_types: list[str]) -> tuple:
    data = _selector(signature) + abi_encode(arg_types, args)
    raw = rpc(url, "eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
    return abi_decode(result_types, bytes.fromhex(raw[2:]))


def erc20_symbol(url: str, token: str) -> str:
    return _call(url, token, "symbol()", [], [], ["string"])[0]


def erc20_decimals(url: str, token: str) -> int:
    return _call(url, token, "decimals()", [], [], ["uint8"])[0]


def erc20_total_supply(url: str, token: str) -> int:
    return _call(url, token, "totalSupply()", [], [], ["uint256"])[0]


def erc20_balance_of(url: str, token: str, owner: str) -> int:
    return _call(url, token, "balanceOf(address)", ["address"], [owner], ["uint256"])[0]




def eth_accounts(url: str) -> list[str]:
    return [address.lower() for address in rpc(url, "eth_accounts")]


def _send(url: str, tx: dict) -> str:
    return rpc(url, "eth_sendTransaction", [tx])


def _wait_for_receipts(url: str, tx_hashes: list[str], *, timeout: float = 60.0) -> list[dict]:
    receipts, deadline = {}, time.monotonic() + timeout
    while len(receipts) < len(tx_hashes):
        for tx_hash in tx_hashes:
            if tx_hash not in receipts and (receipt := rpc(url, "eth_getTransactionReceipt", [tx_hash])):
                receipts[tx_hash] = receipt
        if len(receipts) == len(tx_hashes):
            break
        if time.monotonic() > deadline:
            pending = sorted(set(tx_hashes) - set(receipts))
            raise DevchainError(f"transactions not mined within {timeout:g} s: {pending}")
        time.sleep(0.05)
    failed = [h for h in tx_hashes if int(receipts[h]["status"], 16) != 1]
    if failed:
        raise DevchainError(f"transactions reverted: {failed}")
    return [receipts[h] for h in tx_hashes]


# --- Tokens -----------------------------------------------------------------------------------------------------


def _verify_test_token(url: str, address: str, spec: DevTokenSpec) -> None:
    try:
        symbol, decimals = erc20_symbol(url, address), erc20_decimals(url, address)
    except (RpcError, ValueError) as exc:
        raise DevchainError(f"{address} holds a contract that is not the test {spec.symbol}: {exc}") from exc
    if (symbol, decimals) != (spec.symbol, spec.decimals):
        raise DevchainError(
            f"{address} holds {symbol!r} with {decimals} decimals, expected the test {spec.symbol} "
            f"with {spec.decimals}; start a fresh chain"
        )


def deploy_test_tokens(rpc_url: str) -> dict[str, str]:
    """Deploy the test USDT and USDC from anvil's first account and fund its first ten accounts once.

    Returns {"usdt": address, "usdc": address} in lower case. Idempotent: tokens already at the CREATE addresses of
    account 0's nonces 0 and 1 are checked (symbol, decimals) and reused, and a token with any supply is not minted
    again. Account 0 must not have sent other transactions before the deployment."""
    if (chain_id := chain_id_at(rpc_url)) != CHAIN_ID:
        raise DevchainError(f"expected the local chain {CHAIN_ID} at {rpc_url}, found {chain_id}")
    accounts = eth_accounts(rpc_url)
    if len(accounts) < FUNDED_ACCOUNT_COUNT:
        raise DevchainError(f"the node at {rpc_url} has {len(accounts)} unlocked accounts, expected at least 10")
    deployer, funded = accounts[0], accounts[:FUNDED_ACCOUNT_COUNT]
    addresses = {spec.currency: create_address(deployer, spec.deployer_nonce) for spec in TEST_TOKENS}

    # 1. Deploy what is missing, each at its own nonce, and wait for all of them (one block in interval mining).
    next_nonce = int(rpc(rpc_url, "eth_getTransactionCount", [deployer, "pending"]), 16)
    deployments = []
    for spec in TEST_TOKENS:
        address = addresses[spec.currency]
        if rpc(rpc_url, "eth_getCode", [address, "latest"]) not in ("0x", ""):
            _verify_test_token(rpc_url, address, spec)
            continue
        if next_nonce != spec.deployer_nonce:
            raise DevchainError(
                f"cannot deploy the test {spec.symbol} at {address}: account 0 ({deployer}) is at nonce {next_nonce}, "
                f"not {spec.deployer_nonce}; the chain was used before the tokens were deployed, start a fresh one"
            )
        bytecode = compile_test_token()["bytecode"]
        constructor_args = abi_encode(["string", "string", "uint8"], [spec.name, spec.symbol, spec.decimals])
        deployments.append(_send(rpc_url, {
            "from": deployer, "data": bytecode + constructor_args.hex(), "nonce": hex(spec.deployer_nonce),
        }))
        next_nonce += 1
    if deployments:
        _wait_for_receipts(rpc_url, deployments)
        for spec in TEST_TOKENS:
            _verify_test_token(rpc_url, addresses[spec.currency], spec)

    # 2. Fund the ten accounts of a token that has never been minted (mintBatch: all or nothing, one transaction).
    mints = []
    for spec in TEST_TOKENS:
        address = addresses[spec.currency]
        if erc20_total_supply(rpc_url, address) != 0:
            continue
        data = _selector("mintBatch(address[],uint256)") + abi_encode(
            ["address[]", "uint256"], [funded, spec.mint_base_units]
        )
        mints.append(_send(rpc_url, {"from": deployer, "to": address, "data": "0x" + data.hex(),
                                     "nonce": hex(next_nonce)}))
        next_nonce += 1
    if mints:
        _wait_for_receipts(rpc_url, mints)
    return addresses


# --- The devnet row ---------------------------------------------------------------------------------------------


def register_devnet(rpc_url: str, tokens: dict[str, str]) -> Network:
    """Make `devnet` (chain 31337) THE active test-mode `bsc` network with the deployed tokens. Idempotent.

    Other active test-mode `bsc` networks (bsc-testnet) are switched off in the same transaction, before devnet is
    switched on, so the one-active-network-per-mode constraint holds at every statement."""
    if (chain_id := chain_id_at(rpc_url)) != CHAIN_ID:
        raise DevchainError(f"expected the local chain {CHAIN_ID} at {rpc_url}, found {chain_id}")
    specs = {spec.currency: spec for spec in TEST_TOKENS}
    decimals = {}
    for currency, address in tokens.items():
        decimals[currency] = erc20_decimals(rpc_url, address)
        if decimals[currency] != specs[currency].decimals:
            raise DevchainError(
                f"{currency} at {address} has {decimals[currency]} decimals, expected {specs[currency].decimals}"
            )

    with transaction.atomic():
        (
            Network.objects.filter(api_name=DEVNET_API_NAME, livemode=False, is_active=True)
            .exclude(code=DEVNET_CODE)
            .update(is_active=False)
        )
        network, _ = Network.objects.update_or_create(
            code=DEVNET_CODE,
            defaults=dict(
                api_name=DEVNET_API_NAME, display_name="Local devnet (anvil)", chain_id=CHAIN_ID, livemode=False,
                is_active=True, native_currency="eth", native_decimals=18, block_time_ms=1000,
                finality=Network.Finality.FINALIZED, rpc_env=rpc_env_name(DEVNET_CODE),
                public_rpc_url=rpc_url,  # a local node with no secret: what a browser wallet on this machine uses
            ),
        )
        for currency, address in tokens.items():
            Token.objects.update_or_create(
                network=network, currency=currency,
                defaults=dict(contract_address=address.lower(), decimals=decimals[currency], pegged_currency="usd",
                              is_active=True),
            )
    clear_network_cache()  # this process reads the new active network at once (others within the cache TTL)
    return network


# --- Summary ----------------------------------------------------------------------------------------------------


def summary(*, rpc_url: str, tokens: dict[str, str], network: Network | None = None, block_time: float | None = None,
            anvil_pid: int | None = None, reused: bool = False) -> dict:
    """What a developer (or a script) needs to use the chain: one JSON object, printed on one line."""
    keys = dict(zip(DEV_ACCOUNTS, DEV_PRIVATE_KEYS))
    accounts = eth_accounts(rpc_url)[:FUNDED_ACCOUNT_COUNT]
    automine = bool(rpc(rpc_url, "anvil_getAutomine"))
    code = network.code if network else DEVNET_CODE
    return {
        "rpc_url": rpc_url,
        "chain_id": int(rpc(rpc_url, "eth_chainId"), 16),
        "network": code,
        "rpc_env": network.rpc_env if network else rpc_env_name(code),
        "tokens": {
            currency: {"address": address, "decimals": erc20_decimals(rpc_url, address)}
            for currency, address in tokens.items()
        },
        "accounts": [{"address": address, "private_key": keys.get(address)} for address in accounts],
        "block_mode": "automine" if automine else "interval",
        "block_time_s": None if automine else block_time,
        "anvil_pid": anvil_pid,
        "reused": reused,
    }
