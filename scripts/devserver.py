"""A small supervisor for a developer machine: prepares the database, starts the local chain, makes sure the wallet
and the demo merchant exist, gives the devnet a hot wallet (funded with devnet coin from an anvil account, the top-up
recorded in the ledger) and a watch-only cold address with its hot/cold setting, prints how to use them, then runs
web, the workers (the signer's on its own queue), beat and the chain watcher until Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
CHAIN_STATE = ROOT / ".local" / "devchain-state.json"  # the local chain, kept between runs (anvil --state)
WEB_PORT = os.environ.get("GATEWAY_PORT", "8000")
CHAIN_PORT = os.environ.get("DEVCHAIN_PORT", "8545")
# A block every second, so that a demo payment becomes final (finalized = head - 2) without other traffic.
BLOCK_TIME = os.environ.get("DEVCHAIN_BLOCK_TIME", "1")
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "gateway.settings.local",
    "GATEWAY_PUBLIC_URL": os.environ.get("GATEWAY_PUBLIC_URL", f"http://127.0.0.1:{WEB_PORT}"),
    "GATEWAY_DEVCHAIN_RPC_URL": f"http://127.0.0.1:{CHAIN_PORT}",
    "GATEWAY_RPC_DEVNET": os.environ.get("GATEWAY_RPC_DEVNET", f"http://127.0.0.1:{CHAIN_PORT}"),
    "PYTHONUNBUFFERED": "1",
}
children: list[tuple[str, subprocess.Popen]] = []
# The demo's hot/cold policy (base units of the 18-decimal test tokens): above 1,000 tokens the surplus goes to a
# watch-only cold address (nobody holds its key here); an alert below 1 ETH of gas. No token floor: the hot wallet
# starts empty and the sweeps fill it (`manage.py hot_cold set --floor N` to see a token alert).
HOT_FUNDING_WEI = 100 * 10**18
DEMO_SWEEP_WINDOW = "10"
DEMO_COLD_ADDRESS = "0x000000000000000000000000000000000000c01d"
DEMO_HOT_COLD = ["--floor", "0", "--ceiling", str(1000 * 10**18), "--native-floor", str(10**18),
                 "--cold-address", DEMO_COLD_ADDRESS]


def manage(*args, capture=False) -> str:
    result = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=ENV, check=True, text=True,
                            stdout=subprocess.PIPE if capture else None)
    return result.stdout or ""


def chain_rpc(method: str, params: list):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(ENV["GATEWAY_DEVCHAIN_RPC_URL"], data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        reply = json.loads(response.read())
    if reply.get("error"):
        raise SystemExit(f"devchain {method}: {reply['error']}")
    return reply["result"]


def hot_and_cold(chain: dict) -> dict:
    """Register the devnet hot wallet (here, where the local KEK is), fund it from anvil's first account when it has
    less than half the funding, record the top-up (checked on the chain), and set the USDT and USDC hot/cold rows."""
    hot = json.loads(manage("hot_wallet", "--network", "devnet", "--json", capture=True))
    if int(chain_rpc("eth_getBalance", [hot["address"], "latest"]), 16) < HOT_FUNDING_WEI // 2:
        funder = chain["accounts"][0]["address"]
        tx_hash = chain_rpc("eth_sendTransaction", [{"from": funder, "to": hot["address"],
                                                     "value": hex(HOT_FUNDING_WEI)}])
        deadline = time.monotonic() + 30
        while chain_rpc("eth_getTransactionReceipt", [tx_hash]) is None:
            if time.monotonic() > deadline:
                raise SystemExit("the hot wallet's funding was not mined")
            time.sleep(0.2)
        manage("ledger", "topup", "--network", "devnet", "--token", "native", "--amount", str(HOT_FUNDING_WEI),
               "--tx-hash", tx_hash, "--reason", "devnet demo: gas from anvil's first account", capture=True)
    for currency in chain.get("tokens", {}):
        manage("hot_cold", "set", "--network", "devnet", "--token", currency, *DEMO_HOT_COLD, capture=True)
        # Sweeps: the Sweeper deployed by the hot wallet (queued: the signer and the sender below send it), and
        # every credited deposit swept within DEMO_SWEEP_WINDOW seconds of its payment.
        manage("sweep", "--network", "devnet", "--deploy", "--policy", currency, "--window", DEMO_SWEEP_WINDOW,
               capture=True)
    return {"hot_wallet": hot["address"], "cold_address": DEMO_COLD_ADDRESS,
            "hot_cold": "manage.py hot_cold (status), admin: Settlements > Hot/cold settings",
            "sweeps": "manage.py sweep --dry-run, admin: Settlements > Sweeps"}


def pump(name: str, stream) -> None:
    for line in stream:
        sys.stdout.write(f"{name:>6} | {line}")
        sys.stdout.flush()


def start(name: str, *cmd: str, first_line_json: bool = False):
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, bufsize=1)
    children.append((name, proc))
    summary = None
    if first_line_json:
        for line in proc.stdout:
            if line.startswith("{"):
                summary = json.loads(line)
                break
            sys.stdout.write(f"{name:>6} | {line}")
        if summary is None:
            raise SystemExit(f"{name} stopped before it was ready")
    threading.Thread(target=pump, args=(name, proc.stdout), daemon=True).start()
    return summary


def stop_all(*_):
    for _, proc in reversed(children):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for _, proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(0)


def main():
    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    if not CHAIN_STATE.exists():
        # A new chain: a database left by an earlier one would describe blocks, nonces, contracts and balances that
        # no longer exist (the scanner would wait for the old block numbers, the hot wallet's nonces would be
        # wrong). Start both afresh; from now on the chain is kept in CHAIN_STATE beside the database.
        subprocess.run(["dropdb", "-h", "127.0.0.1", "--if-exists", "--force", "gateway"], check=False)
    subprocess.run(["createdb", "-h", "127.0.0.1", "gateway"], stderr=subprocess.DEVNULL, check=False)
    manage("migrate", "--no-input", "-v", "0")
    CHAIN_STATE.parent.mkdir(exist_ok=True)
    chain = start("chain", PY, "manage.py", "devchain", "--port", CHAIN_PORT, "--block-time", BLOCK_TIME,
                  "--state", str(CHAIN_STATE), first_line_json=True)
    status = json.loads(manage("wallet", "status", "--json", capture=True) or "null")
    if not status.get("initialized"):
        print(manage("wallet", "init", "--json", capture=True).strip())
    demo = json.loads(manage("demo_merchant", capture=True))
    treasury = hot_and_cold(chain)
    start("web", PY, "manage.py", "runserver", f"127.0.0.1:{WEB_PORT}", "--noreload")
    start("worker", PY, "-m", "celery", "-A", "gateway", "worker", "-l", "info", "-Q",
          "default,chain,webhooks", "-c", "2", "-n", "worker@%h")
    # The signer: the only worker that signs (it reads the local KEK); in production the only one given GATEWAY_KEK.
    start("signer", PY, "-m", "celery", "-A", "gateway", "worker", "-l", "info", "-Q", "signer", "-c", "1",
          "-n", "signer@%h")
    start("watch", PY, "manage.py", "watch")
    start("hooks", PY, "manage.py", "deliver_webhooks")
    start("beat", PY, "-m", "celery", "-A", "gateway", "beat", "-l", "info")
    print("\n=== The gateway is running (Ctrl-C stops everything) ===")
    print(json.dumps({"demo": demo, "chain": {k: chain.get(k) for k in ("rpc_url", "chain_id", "tokens")},
                      "treasury": treasury}, indent=2))
    print(f"Try: curl {demo['api_base']}/payment_intents -u {demo['secret_key']}: -d amount=1234 -d currency=usd")
    print(f"then pay it on the local chain: curl {demo['api_base']}/test_helpers/payment_intents/<pi_id>/"
          f"simulate_crypto_deposit -u {demo['secret_key']}: -d network=bsc -d token_currency=usdt\n")
    while True:
        for name, proc in children:
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping everything")
                stop_all()
        time.sleep(0.5)


if __name__ == "__main__":
    main()
