#!/usr/bin/env python
"""The chain scanner's ingest rate: Transfer logs per second over a devnet range, with a million watched addresses.

    .venv/bin/python bench/chain_ingest.py [--addresses 1000000] [--logs 100000] [--runs 2] [--profile] [--no-record]

One command, from nothing: it drops and re-creates the `gateway_bench_chain` database, migrates it, creates a
merchant and inserts `--addresses` DepositAddress rows in one SQL statement (generate_series: distinct, valid 0x
addresses `0x` + md5('bench-<i>') + <i as 8 hex digits>; NOT HD derivations, which the scanner never looks at);
starts a fresh anvil on a free 127.0.0.1 port with the test tokens, deploys contracts/BenchToken.sol and registers it
as a token of the devnet; then produces `--logs` Transfer events FROM the token contract with `batchTransfer`
(`--per-tx` recipients per transaction, `--txs-per-block` transactions per block), half of them (`--watched-share`) to
watched addresses drawn at random among the million, the rest to random unwatched addresses, and mines a few empty
blocks so that the whole range is final.

Each run empties the scanner's tables (transfers, activity queue, stored blocks, cursor) and times
`manage.py scan --chain devnet --from-block FIRST --to-block LAST` in a process of its own: logs per second (logs in
the range / the scan's own seconds, and / the process's wall time including Django's start), the process's peak
RSS (VmHWM, reported by the process itself), its CPU time, anvil's CPU time and the machine's. After each run it
checks that every watched transfer is recorded once and final, and that the activity queue holds one row per
watched address.
`--profile` adds one run under cProfile and prints where the time goes. Appends a dated section to
docs/benchmarks.md (`--no-record`: print only). anvil is stopped at the end, whatever happens.
"""
import argparse
import datetime as dt
import hashlib
import json
import os
import pstats
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chain_common as cc

DB_NAME = "gateway_bench_chain"
BENCH_CURRENCY = "bnch"
UNIT = 10**18  # BenchToken has 18 decimals; each transfer moves 1 token
GAS_PER_RECIPIENT = 30_000  # a fresh recipient's balance slot (22,100) + the Transfer log + the loop


def bench_address(i: int) -> str:
    """The i-th watched address, exactly as the SQL of `addresses_insert` builds it."""
    return "0x" + hashlib.md5(f"bench-{i}".encode()).hexdigest() + f"{i:08x}"


def addresses_insert(count: int, merchant_id) -> float:
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wallets_depositaddress (index, address, merchant_id, created) "
            "SELECT i, '0x' || md5('bench-' || i) || lpad(to_hex(i), 8, '0'), %s, now() "
            "FROM generate_series(0, %s - 1) AS i",
            [merchant_id, count],
        )
        cursor.execute("ANALYZE wallets_depositaddress")
    return time.monotonic() - started


def bench_token_deploy(rpc_url: str, deployer: str) -> str:
    from eth_abi import encode as abi_encode

    from wallets import devchain

    artifact = devchain.compile_contract(devchain.REPO_ROOT / "contracts" / "BenchToken.sol", "BenchToken")
    args = abi_encode(["string", "string", "uint8", "uint256"], ["Bench token", "BNCH", 18, 10**30 * UNIT])
    tx = devchain.rpc(rpc_url, "eth_sendTransaction", [{"from": deployer, "data": artifact["bytecode"] + args.hex()}])
    receipt = devchain._wait_for_receipts(rpc_url, [tx])[0]
    return receipt["contractAddress"].lower()


def transfers_produce(*, rpc_url: str, token: str, sender: str, recipients: list[str], per_tx: int,
                      txs_per_block: int) -> tuple[int, int]:
    """Send `recipients` in batchTransfer transactions of `per_tx`, `txs_per_block` per mined block (automine off);
    returns the first and last block holding them."""
    from eth_abi import encode as abi_encode
    from eth_utils import function_signature_to_4byte_selector

    from wallets import devchain

    selector = function_signature_to_4byte_selector("batchTransfer(address[],uint256)")
    devchain.rpc(rpc_url, "evm_setAutomine", [False])
    nonce = int(devchain.rpc(rpc_url, "eth_getTransactionCount", [sender, "pending"]), 16)
    hashes, pending = [], 0
    for start in range(0, len(recipients), per_tx):
        chunk = recipients[start:start + per_tx]
        data = selector + abi_encode(["address[]", "uint256"], [chunk, UNIT])
        hashes.append(devchain.rpc(rpc_url, "eth_sendTransaction", [{
            "from": sender, "to": token, "data": "0x" + data.hex(), "nonce": hex(nonce),
            "gas": hex(GAS_PER_RECIPIENT * len(chunk) + 100_000),
        }], timeout=60))
        nonce += 1
        pending += 1
        if pending == txs_per_block:
            devchain.rpc(rpc_url, "evm_mine", timeout=120)
            pending = 0
    if pending:
        devchain.rpc(rpc_url, "evm_mine", timeout=120)
    devchain.rpc(rpc_url, "evm_setAutomine", [True])
    receipts = devchain._wait_for_receipts(rpc_url, hashes, timeout=300)
    per_block: dict[int, int] = {}
    for receipt in receipts:
        number = int(receipt["blockNumber"], 16)
        per_block[number] = per_block.get(number, 0) + 1
    if max(per_block.values()) != min(txs_per_block, len(hashes)):
        cc.say(f"  note: transactions per block {sorted(set(per_block.values()))} (gas limit?)")
    # Make the whole range final (--slots-in-an-epoch 1: finalized = head - 2) and give the scanner an anchor block.
    devchain.rpc(rpc_url, "anvil_mine", [hex(3)])
    return min(per_block), max(per_block)


def scanner_tables_empty() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE wallets_transfer, wallets_addressactivity, wallets_scannedblock, "
                       "wallets_chaincursor CASCADE")
        cursor.execute("ANALYZE wallets_transfer")


# The scan process reports its own peak RSS (VmHWM of its memory map) on exit. Not wait4's ru_maxrss: Linux carries
# the parent's peak into a forked child across exec, so the child's ru_maxrss is at least this (large) process's.
PEAK_WRAPPER = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('BENCH VmHWM', line.split()[1], 'kB', file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def scan_run(env: dict, *, first: int, last: int, anvil_pid: int, profile_to: Path | None = None) -> dict:
    """Time `manage.py scan` over [first, last] in a process of its own; its rusage from wait4."""
    manage = [str(cc.ROOT / "manage.py"), "scan", "--chain", "devnet", "--from-block", str(first), "--to-block",
              str(last)]
    if profile_to:
        cmd = [str(cc.BIN / "python"), "-m", "cProfile", "-o", str(profile_to), *manage]
    else:
        cmd = [str(cc.BIN / "python"), "-c", PEAK_WRAPPER, *manage]
    anvil_before, machine_before = cc.proc_ticks(anvil_pid), cc.machine_ticks()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cc.ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    anvil_cpu = (cc.proc_ticks(anvil_pid) - anvil_before) / cc.CLK_TCK
    machine_after = cc.machine_ticks()
    if proc.returncode != 0:
        raise SystemExit(f"scan failed ({proc.returncode}):\n{stderr[-4000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    peak = re.search(r"^BENCH VmHWM (\d+) kB$", stderr, re.M)
    return {"wall": wall, "summary": summary, "anvil_cpu": anvil_cpu, "stderr": stderr,
            "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_mb": int(peak.group(1)) / 1024 if peak else 0.0,
            "machine_busy": (machine_after[0] - machine_before[0]) / cc.CLK_TCK,
            "machine_capacity": (machine_after[1] - machine_before[1]) / cc.CLK_TCK}


def verify(*, network, expected_watched: int, expected_addresses: int) -> str:
    from wallets.models import AddressActivity, Transfer

    rows = Transfer.objects.filter(network=network)
    total = rows.count()
    final = rows.filter(finalized_at__isnull=False).count()
    keys = rows.values("tx_hash", "log_index").distinct().count()
    activity = AddressActivity.objects.values("deposit_address_id").distinct().count()
    if not (total == keys == final == expected_watched and activity == expected_addresses):
        raise SystemExit(f"after the scan: {total} transfers ({keys} distinct, {final} final) for {expected_watched} "
                         f"watched logs; activity for {activity} addresses, expected {expected_addresses}")
    return (f"{total:,} transfers recorded (one per watched log, all final), activity queued for {activity:,} "
            "addresses")


def profile_summary(path: Path, limit: int = 22) -> list[str]:
    stats = pstats.Stats(str(path))
    total = stats.total_tt
    rows = []
    for (filename, line, name), (cc_, nc, tt, ct, callers) in stats.stats.items():
        rows.append((tt, ct, nc, f"{Path(filename).name}:{line}({name})" if line else name))
    lines = [f"cProfile of one scan process ({total:.2f} s of profiled CPU; profiling slows Python code ~1.5-2x):", "",
             "| function | self s | self % | cumulative s | calls |", "|---|---:|---:|---:|---:|"]
    for tt, ct, nc, label in sorted(rows, reverse=True)[:limit]:
        lines.append(f"| `{label}` | {tt:.2f} | {100 * tt / total:.0f}% | {ct:.2f} | {nc:,} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=1_000_000, help="watched deposit addresses (1,000,000)")
    parser.add_argument("--logs", type=int, default=100_000, help="Transfer logs in the range (100,000)")
    parser.add_argument("--watched-share", type=float, default=0.5, help="share of logs to watched addresses (0.5)")
    parser.add_argument("--per-tx", type=int, default=500, help="recipients per batchTransfer (500)")
    parser.add_argument("--txs-per-block", type=int, default=2, help="transactions per block (2)")
    parser.add_argument("--max-log-range", type=int, default=None,
                        help="the devnet's max_log_range (blocks per eth_getLogs; default: the model's default)")
    parser.add_argument("--runs", type=int, default=2, help="timed runs (2)")
    parser.add_argument("--profile", action="store_true", help="one more run under cProfile; print the top")
    parser.add_argument("--label", default="", help="a few words for the heading of the docs section")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    if not 0 <= args.watched_share <= 1 or args.logs < 1 or args.per_tx < 1 or args.addresses < 1:
        parser.error("bad sizes")

    started_at = dt.datetime.now(dt.timezone.utc)
    command = shlex.join([".venv/bin/python", "bench/chain_ingest.py", *sys.argv[1:]])
    info = cc.machine()
    load_before = cc.load_average()
    cc.say(f"database {DB_NAME}: drop, create, migrate")
    cc.database_reset(DB_NAME)
    cc.django_setup(cc.bench_env(DB_NAME))
    anvil = None
    try:
        anvil, rpc_url = cc.start_anvil()
        env = cc.bench_env(DB_NAME, rpc_url)
        os.environ.update(env)
        from django.core.management import call_command

        from merchants import services as merchant_services
        from wallets import devchain
        from wallets.models import Network, Token

        call_command("migrate", "--no-input", verbosity=0)
        cc.redis_flush()
        merchant = merchant_services.merchant_create(email="bench-chain@example.com", name="Bench", password=None)
        cc.say(f"{args.addresses:,} deposit addresses")
        insert_seconds = addresses_insert(args.addresses, merchant.id)
        cc.say(f"  inserted in {insert_seconds:.1f} s")

        tokens = devchain.deploy_test_tokens(rpc_url)
        network = devchain.register_devnet(rpc_url, tokens)
        if args.max_log_range:
            network.max_log_range = args.max_log_range
            network.save(update_fields=["max_log_range"])
        sender = devchain.eth_accounts(rpc_url)[0]
        token = bench_token_deploy(rpc_url, sender)
        Token.objects.update_or_create(network=network, currency=BENCH_CURRENCY, defaults=dict(
            contract_address=token, decimals=18, pegged_currency="usd", is_active=True))

        rng = random.Random(20261202)
        watched_count = round(args.logs * args.watched_share)
        watched_indexes = rng.sample(range(args.addresses), min(watched_count, args.addresses))
        watched = [bench_address(rng.choice(watched_indexes) if k >= len(watched_indexes) else watched_indexes[k])
                   for k in range(watched_count)]
        unwatched = ["0x" + rng.randbytes(20).hex() for _ in range(args.logs - watched_count)]
        recipients = watched + unwatched
        rng.shuffle(recipients)
        cc.say(f"producing {args.logs:,} Transfer logs ({watched_count:,} to watched addresses), {args.per_tx} per "
               f"transaction, {args.txs_per_block} transactions per block")
        t0 = time.monotonic()
        first, last = transfers_produce(rpc_url=rpc_url, token=token, sender=sender, recipients=recipients,
                                        per_tx=args.per_tx, txs_per_block=args.txs_per_block)
        cc.say(f"  blocks {first}-{last} in {time.monotonic() - t0:.1f} s")
        logs_in_range = len(devchain.rpc(rpc_url, "eth_getLogs", [{
            "fromBlock": hex(first), "toBlock": hex(last), "address": [token]}], timeout=120))
        if logs_in_range != args.logs:
            raise SystemExit(f"{logs_in_range} logs in the range, expected {args.logs}")
        network.refresh_from_db()
        log_range = network.max_log_range
        distinct_watched = len(set(watched))

        results = []
        for run in range(1, args.runs + 1):
            scanner_tables_empty()
            cc.redis_flush()
            load = cc.load_average()
            cc.say(f"run {run}: scan blocks {first}-{last} (load {load})")
            r = scan_run(env, first=first, last=last, anvil_pid=anvil.pid)
            r["check"] = verify(network=network, expected_watched=watched_count, expected_addresses=distinct_watched)
            r["load"] = load
            s = r["summary"]
            r["rate_scan"] = logs_in_range / s["seconds"]
            r["rate_wall"] = logs_in_range / r["wall"]
            cc.say(f"  {r['rate_scan']:,.0f} logs/s (scan loop {s['seconds']:.2f} s, {s['steps']} steps), "
                   f"{r['rate_wall']:,.0f} logs/s over the process ({r['wall']:.2f} s), peak RSS "
                   f"{r['peak_rss_mb']:.0f} MB, scanner CPU {r['cpu']:.2f} s, anvil CPU {r['anvil_cpu']:.2f} s; "
                   f"{r['check']}")
            results.append(r)

        profile_lines = []
        if args.profile:
            scanner_tables_empty()
            path = Path(tempfile.mkdtemp(prefix="bench-")) / "scan.prof"
            cc.say("profiled run")
            r = scan_run(env, first=first, last=last, anvil_pid=anvil.pid, profile_to=path)
            verify(network=network, expected_watched=watched_count, expected_addresses=distinct_watched)
            profile_lines = profile_summary(path)
            print("\n".join(profile_lines))
        cc.redis_flush()
    finally:
        if anvil is not None:
            from wallets import devchain

            devchain.stop_anvil(anvil)

    section = report(args=args, info=info, command=command, started=started_at, results=results, first=first,
                     last=last, logs=logs_in_range, watched=watched_count, distinct_watched=distinct_watched,
                     log_range=log_range, insert_seconds=insert_seconds, load_before=load_before,
                     profile_lines=profile_lines)
    print(section)
    if not args.no_record:
        cc.append_doc(section)
        cc.say(f"appended to {cc.DOC.relative_to(cc.ROOT)}")


def report(*, args, info, command, started, results, first, last, logs, watched, distinct_watched, log_range,
           insert_seconds, load_before, profile_lines) -> str:
    blocks = last - first + 1
    rows = ["| run | load (1/5/15 min) | logs/s (scan loop) | logs/s (whole process) | scan loop s | process s "
            "| steps | peak RSS MB | scanner CPU s | anvil CPU s | machine busy |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(results, 1):
        s = r["summary"]
        busy = 100 * r["machine_busy"] / (r["machine_capacity"] or 1)
        rows.append(f"| {i} | {r['load']} | {r['rate_scan']:,.0f} | {r['rate_wall']:,.0f} | {s['seconds']:.2f} "
                    f"| {r['wall']:.2f} | {s['steps']} | {r['peak_rss_mb']:.0f} | {r['cpu']:.2f} "
                    f"| {r['anvil_cpu']:.2f} | {busy:.0f}% |")
    best = max(r["rate_scan"] for r in results)
    worst_rss = max(r["peak_rss_mb"] for r in results)
    verdict = [
        f"Goal: at least 50,000 logs/s with the scanner's peak memory at most 300 MB. Best run: {best:,.0f} logs/s "
        f"over the scan loop ({'met' if best >= 50_000 else 'NOT met'}); peak RSS {worst_rss:.0f} MB "
        f"({'met' if worst_rss <= 300 else 'NOT met'}).",
    ]
    lines = [
        f"## Chain ingest: {logs:,} Transfer logs, {args.addresses:,} watched addresses "
        f"({started:%Y-%m-%d %H:%M} UTC){' - ' + args.label if args.label else ''}",
        "",
        f"Command: `{command}`",
        "",
        cc.machine_line(info),
        f"Load average before the set-up: {load_before} (the machine is shared: other engineers' test runs).",
        "",
        f"Set-up: database `{DB_NAME}` with {args.addresses:,} deposit addresses inserted by one generate_series "
        f"statement in {insert_seconds:.1f} s (distinct valid 0x addresses, not HD derivations); a fresh anvil; "
        f"contracts/BenchToken.sol registered as a devnet token; {logs:,} Transfer logs of that token in blocks "
        f"{first}-{last} ({blocks} blocks, {args.txs_per_block} batchTransfer transactions of {args.per_tx} "
        f"recipients per block), {watched:,} to {distinct_watched:,} watched addresses drawn at random, "
        f"{logs - watched:,} to random unwatched addresses; the range is final when scanned (a catch-up). "
        f"The devnet's max_log_range: {log_range} blocks per eth_getLogs.",
        "",
        "Each run: the scanner's tables emptied, then `manage.py scan --chain devnet --from-block "
        f"{first} --to-block {last}` in its own process (production settings). 'Scan loop' is the command's own "
        "timing of its steps; 'whole process' adds Python and Django start-up. Peak RSS: the scan process's "
        "VmHWM (its own peak resident memory, Python and Django included). CPU: the scan process's user+system "
        "time, anvil's, and the whole machine's busy share.",
        "",
        *rows,
        "",
        "Checks after each run: " + results[-1]["check"] + ".",
        "",
        *[f"- {v}" for v in verdict],
        "",
    ]
    if profile_lines:
        lines += [*profile_lines, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
