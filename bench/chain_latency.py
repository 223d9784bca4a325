#!/usr/bin/env python
"""Payment latency on a 0.45 s devnet: block carrying a payment -> `processing` committed, finalizing block ->
`succeeded` committed, through the production path (the watcher on WebSocket heads, Redis, a Celery worker).

    .venv/bin/python bench/chain_latency.py [--payments 50] [--block-time 0.45] [--runs 2] [--no-record]

One command, from nothing: it drops and re-creates the `gateway_bench_latency` database, migrates it, initializes
the wallet and creates a merchant; starts a fresh anvil with `--block-time 0.45` on a free 127.0.0.1 port (the
test tokens deployed, `devnet` registered); then starts, in processes of their own and with production settings,
`manage.py watch --chain devnet` (the chain watcher: WebSocket newHeads, one scan per head) and
`celery -A gateway worker -Q default` (the payments side: `payments.tasks.process_address_activity`, sent by the
scanner after its commits) on the benchmarks' own Redis database (redis://127.0.0.1:6379/9, emptied before and
after). It subscribes to newHeads itself and notes the wall time each block reaches it, with the node's finalized
block at that moment (anvil's timestamps have a one-second resolution; `--slots-in-an-epoch 1` makes finalized =
head - 2).

For each of `--payments` intents, one by one: create it (payments.services.payment_intent_create, bsc, usd), send
its exact USDT amount from a funded account, wait for the receipt (block B), then for the intent's
`payment_intent.processing` and `payment_intent.succeeded` events. Latency 1: the event's `created` (set inside the
worker's transaction, just before COMMIT) minus the wall time block B appeared. Latency 2: `succeeded`'s `created`
minus the wall time of the first block whose finalized number was >= B. Both clocks are this machine's. Prints
p50/p95/max per run and appends a dated section to docs/benchmarks.md (`--no-record`: print only). Every process it
started is stopped at the end, whatever happens.
"""
import argparse
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import chain_common as cc

DB_NAME = "gateway_bench_latency"
AMOUNT_MINOR = 1999


class Heads:
    """Wall time and finalized number of every head the node announces (our own newHeads subscription)."""

    def __init__(self, rpc_url: str):
        self.rpc_url = rpc_url
        self.seen: dict[int, float] = {}
        self.finalized: dict[int, int] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()

    def on_head(self, number: int, block_hash: str) -> None:
        now = time.time()
        from wallets import devchain

        finalized = int(devchain.rpc(self.rpc_url, "eth_getBlockByNumber", ["finalized", False])["number"], 16)
        with self.lock:
            self.seen.setdefault(number, now)
            self.finalized.setdefault(number, finalized)

    def appeared(self, number: int) -> float | None:
        with self.lock:
            return self.seen.get(number)

    def finalizing(self, number: int) -> tuple[int, float] | None:
        """The first head whose finalized block is >= `number`, and when it appeared."""
        with self.lock:
            heads = sorted(h for h, f in self.finalized.items() if f >= number)
            return (heads[0], self.seen[heads[0]]) if heads else None


def start_process(name: str, cmd: list[str], env: dict, logdir: Path) -> subprocess.Popen:
    log = open(logdir / f"{name}.log", "wb")
    return subprocess.Popen(cmd, env=env, cwd=cc.ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM to a process we started (graceful), SIGKILL to its own process group if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def event_created(intent_id: str, type: str) -> float | None:
    from payments.models import Event

    created = Event.objects.filter(object_id=intent_id, type=type).values_list("created", flat=True).first()
    return created.timestamp() if created else None


def one_payment(*, merchant, rpc_url: str, payer: str, heads: Heads, timeout: float = 60.0) -> dict:
    from eth_utils import function_signature_to_4byte_selector

    from payments.models import PaymentIntent, PaymentOption
    from payments.services import PaymentIntentInput, payment_intent_create
    from wallets import devchain
    from wallets.models import Transfer

    intent = payment_intent_create(merchant=merchant, livemode=False,
                                   data=PaymentIntentInput(amount=AMOUNT_MINOR, currency="usd", networks=["bsc"]))
    option = PaymentOption.objects.select_related("token").get(payment_intent_id=intent.id, token__currency="usdt")
    to = intent.deposit_address.address
    data = (function_signature_to_4byte_selector("transfer(address,uint256)") + bytes.fromhex(to[2:].rjust(64, "0"))
            + option.amount_base_units.to_bytes(32, "big"))
    sent_at = time.time()
    tx = devchain.rpc(rpc_url, "eth_sendTransaction", [{"from": payer, "to": option.token.contract_address,
                                                        "data": "0x" + data.hex()}])
    receipt = cc.wait_until(lambda: devchain.rpc(rpc_url, "eth_getTransactionReceipt", [tx]), timeout, "the receipt")
    if receipt["status"] != "0x1":
        raise SystemExit(f"the payment {tx} reverted")
    block = int(receipt["blockNumber"], 16)
    processing = cc.wait_until(lambda: event_created(intent.id, "payment_intent.processing"), timeout,
                               f"processing of {intent.id}", interval=0.02)
    processing_seen = time.time()  # committed: visible to this connection (polled every 20 ms)
    succeeded = cc.wait_until(lambda: event_created(intent.id, "payment_intent.succeeded"), timeout,
                              f"succeeded of {intent.id}", interval=0.02)
    succeeded_seen = time.time()
    transfer = Transfer.objects.filter(deposit_address_id=intent.deposit_address_id).values(
        "seen_at", "finalized_at").get()
    block_at = cc.wait_until(lambda: heads.appeared(block), 5, f"block {block} on our subscription")
    finalizing_block, finalizing_at = cc.wait_until(lambda: heads.finalizing(block), 5,
                                                    f"a head finalizing block {block}")
    status = PaymentIntent.objects.values_list("status", flat=True).get(id=intent.id)
    if status != "succeeded":
        raise SystemExit(f"{intent.id} is {status} after its succeeded event")
    return {"intent": intent.id, "block": block, "finalizing_block": finalizing_block,
            "send_to_block": block_at - sent_at, "processing": processing - block_at,
            "succeeded": succeeded - finalizing_at, "processing_seen": processing_seen - block_at,
            "succeeded_seen": succeeded_seen - finalizing_at,
            # The scanner's step that recorded (finalized) the transfer began at seen_at (finalized_at).
            "scan_started": transfer["seen_at"].timestamp() - block_at,
            "final_scan_started": transfer["finalized_at"].timestamp() - finalizing_at}


def _cursor_at_head(network, rpc_url: str) -> bool:
    from wallets import devchain
    from wallets.chain.selectors import chain_cursor_get

    cursor = chain_cursor_get(network=network)
    return cursor.block_number >= int(devchain.rpc(rpc_url, "eth_blockNumber"), 16) - 1


def stats(values: list[float]) -> dict:
    return {"p50": cc.percentile(values, 50), "p95": cc.percentile(values, 95), "max": max(values),
            "min": min(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=50, help="payments per run (50)")
    parser.add_argument("--block-time", type=float, default=0.45, help="anvil's block time in seconds (0.45)")
    parser.add_argument("--runs", type=int, default=2, help="runs (2), each with --payments payments")
    parser.add_argument("--worker-concurrency", type=int, default=1, help="Celery worker processes (1)")
    parser.add_argument("--label", default="", help="a few words for the heading of the docs section")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()

    started_at = dt.datetime.now(dt.timezone.utc)
    command = shlex.join([".venv/bin/python", "bench/chain_latency.py", *sys.argv[1:]])
    info = cc.machine()
    load_before = cc.load_average()
    cc.say(f"database {DB_NAME}: drop, create, migrate")
    cc.database_reset(DB_NAME)
    cc.django_setup(cc.bench_env(DB_NAME))
    from django.core.management import call_command

    from merchants import services as merchant_services
    from wallets import devchain
    from wallets.chain.services import chain_cursor_init
    from wallets.chain.ws import subscribe_new_heads

    call_command("migrate", "--no-input", verbosity=0)
    call_command("wallet", "init", "--json", stdout=open(os.devnull, "w"))
    merchant = merchant_services.merchant_create(email="bench-latency@example.com", name="Bench", password=None)

    anvil = watcher = worker = None
    stop = threading.Event()
    logdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    runs = []
    try:
        anvil, rpc_url = cc.start_anvil(args.block_time)
        env = cc.bench_env(DB_NAME, rpc_url)
        os.environ.update(env)
        tokens = devchain.deploy_test_tokens(rpc_url)
        network = devchain.register_devnet(rpc_url, tokens)
        # The watcher carries on from here (a brand-new cursor would start at whatever head it first sees).
        chain_cursor_init(network=network, block_number=int(devchain.rpc(rpc_url, "eth_blockNumber"), 16))
        cc.redis_flush()

        heads = Heads(rpc_url)
        threading.Thread(target=subscribe_new_heads, args=(rpc_url.replace("http://", "ws://"), heads.on_head, stop),
                         kwargs={"on_subscribed": heads.subscribed.set}, daemon=True).start()
        if not heads.subscribed.wait(10):
            raise SystemExit("no newHeads subscription within 10 s")

        worker_cmd = [str(cc.BIN / "celery"), "-A", "gateway", "worker", "-Q", "default", "-c",
                      str(args.worker_concurrency), "-l", "WARNING", "--without-gossip", "--without-mingle",
                      "-n", f"bench-latency-{os.getpid()}@%h"]
        watch_cmd = [str(cc.BIN / "python"), "manage.py", "watch", "--chain", "devnet"]
        worker = start_process("worker", worker_cmd, env, logdir)
        watcher = start_process("watch", watch_cmd, env, logdir)
        cc.say(f"anvil {rpc_url} (block time {args.block_time:g} s), watcher pid {watcher.pid}, worker pid "
               f"{worker.pid}; logs in {logdir}")

        cc.wait_until(lambda: _cursor_at_head(network, rpc_url), 60, "the watcher catching up with the head", 0.1)
        payer = devchain.eth_accounts(rpc_url)[1]
        # Warm-up: the first payment pays for imports and connections in the watcher and the worker.
        cc.say("warm-up payment")
        one_payment(merchant=merchant, rpc_url=rpc_url, payer=payer, heads=heads)
        for run in range(1, args.runs + 1):
            load = cc.load_average()
            cc.say(f"run {run}: {args.payments} payments one by one (load {load})")
            results = []
            for i in range(args.payments):
                for proc, name in ((watcher, "watcher"), (worker, "worker")):
                    if proc.poll() is not None:
                        raise SystemExit(f"the {name} exited ({proc.returncode}): see {logdir / (name + '.log')}")
                results.append(one_payment(merchant=merchant, rpc_url=rpc_url, payer=payer, heads=heads))
            processing = stats([r["processing"] for r in results])
            succeeded = stats([r["succeeded"] for r in results])
            runs.append({"load": load, "results": results, "processing": processing, "succeeded": succeeded,
                         **{key: stats([r[key] for r in results]) for key in (
                             "processing_seen", "succeeded_seen", "scan_started", "final_scan_started")},
                         "finality_depth": sorted({r["finalizing_block"] - r["block"] for r in results})})
            cc.say(f"  block -> processing: p50 {processing['p50'] * 1000:.0f} ms, p95 {processing['p95'] * 1000:.0f}"
                   f" ms, max {processing['max'] * 1000:.0f} ms; finalizing block -> succeeded: p50 "
                   f"{succeeded['p50'] * 1000:.0f} ms, p95 {succeeded['p95'] * 1000:.0f} ms, max "
                   f"{succeeded['max'] * 1000:.0f} ms")
    finally:
        stop.set()
        stop_process(watcher)
        stop_process(worker)
        if anvil is not None:
            devchain.stop_anvil(anvil)
        try:
            cc.redis_flush()
        except Exception:  # noqa: BLE001 - Redis gone: nothing of ours left to empty
            pass

    section = report(args=args, info=info, command=command, started=started_at, runs=runs, load_before=load_before)
    print(section)
    if not args.no_record:
        cc.append_doc(section)
        cc.say(f"appended to {cc.DOC.relative_to(cc.ROOT)}")


def _ms(value: float) -> str:
    return f"{value * 1000:,.0f}"


def report(*, args, info, command, started, runs, load_before) -> str:
    rows = ["| run | load (1/5/15 min) | payments | block -> `processing`: p50 / p95 / max ms "
            "| finalizing block -> `succeeded`: p50 / p95 / max ms | visible to a reader, p50 ms: processing / "
            "succeeded | scan step began after the block, p50 ms: seen / finalized "
            "| finalizing block = payment block + |",
            "|---:|---|---:|---|---|---|---|---|"]
    for i, r in enumerate(runs, 1):
        p, s = r["processing"], r["succeeded"]
        rows.append(f"| {i} | {r['load']} | {len(r['results'])} | **{_ms(p['p50'])}** / {_ms(p['p95'])} / "
                    f"{_ms(p['max'])} | **{_ms(s['p50'])}** / {_ms(s['p95'])} / {_ms(s['max'])} "
                    f"| {_ms(r['processing_seen']['p50'])} / {_ms(r['succeeded_seen']['p50'])} "
                    f"| {_ms(r['scan_started']['p50'])} / {_ms(r['final_scan_started']['p50'])} "
                    f"| {', '.join(map(str, r['finality_depth']))} |")
    worst_p50 = max(max(r["processing"]["p50"], r["succeeded"]["p50"]) for r in runs) if runs else float("nan")
    lines = [
        f"## Payment latency on a {args.block_time:g} s devnet, WebSocket heads ({started:%Y-%m-%d %H:%M} UTC)"
        f"{' - ' + args.label if args.label else ''}",
        "",
        f"Command: `{command}`",
        "",
        cc.machine_line(info),
        f"Load average before the set-up: {load_before} (the machine is shared: other engineers' test runs).",
        "",
        f"Set-up: database `{DB_NAME}`; anvil --block-time {args.block_time:g} --slots-in-an-epoch 1 (finalized = "
        "head - 2); `manage.py watch --chain devnet` (WebSocket newHeads) and `celery -A gateway worker -Q default "
        f"-c {args.worker_concurrency}` as separate processes with production settings, Redis database 9 as the "
        f"broker. Per run, {args.payments} intents (19.99 USD, bsc) paid one after the other in USDT, each waited "
        "for until `succeeded`; one warm-up payment before the runs.",
        "",
        "Latencies: from the wall time the block reached the benchmark's own newHeads subscription to the `created` "
        "time of the intent's event (set in the worker's transaction just before COMMIT: the commit itself is a "
        "millisecond or two later). 'Finalizing block': the first head at which the node's finalized block was at "
        "or above the payment's block. 'Visible to a reader': when the benchmark's own query (every 20 ms) first "
        "saw the event, an upper bound of the commit. 'Scan step began': the transfer's `seen_at` / `finalized_at`, "
        "the start time of the watcher's step that recorded / finalized it (the rest is the step itself, the task "
        "message through Redis and the worker's transaction).",
        "",
        *rows,
        "",
        f"- Goal: p50 at most 500 ms for each. Worst p50 of the runs: {_ms(worst_p50)} ms "
        f"({'met' if worst_p50 <= 0.5 else 'NOT met'}).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
