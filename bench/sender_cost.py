#!/usr/bin/env python
"""The webhook sender's CPU per delivery at the whole system's rate: `manage.py deliver_webhooks` while a creation's
two events are committed at a steady rate and one endpoint (a local receiver) subscribes to every event; CPU time,
not wall time, so the figure holds on a busy machine better than a throughput would. With `--tree`, the same runs
with the sender of another checkout (say, main before a change), alternated round by round for an A/B.

    .venv/bin/python bench/sender_cost.py [--rate 130] [--seconds 20] [--rounds 2] [--tree /path/to/other/checkout]

Drops and re-creates `gateway_bench_sender_cost` (BENCH_DB_NAME), migrates it, creates a merchant, starts the
receiver of bench/webhooks.py and adds a test-mode endpoint subscribed to every event. Each round, per checkout:
starts one `manage.py deliver_webhooks` (gateway.settings.production) from that checkout, commits `--rate`
transactions a second for `--seconds` (each inserts `payment_intent.created` and `payment_intent.requires_action`
in one statement, as a creation does), waits until the receiver has every event, and reads the CPU time (utime +
stime, /proc) of the sender and of the PostgreSQL backends of the bench database (the bench's own connection
excluded: what the sender makes PostgreSQL do) from before the first commit to the last receipt. Prints CPU
milliseconds per delivery and appends the table to docs/benchmarks.md. Only 127.0.0.1.
"""
import argparse
import datetime as dt
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sender_idle as si  # bench/ is on sys.path when this file runs as a script
import webhooks as wh

ROOT = wh.ROOT
DB_NAME = wh.DB_NAME = os.environ.get("BENCH_DB_NAME", "gateway_bench_sender_cost")


def backends_cpu(conn) -> float:
    """CPU seconds of the bench database's PostgreSQL backends, this connection's excluded."""
    pids = [row[0] for row in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [DB_NAME])]
    total = 0.0
    for pid in pids:
        try:
            total += si.cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass  # ended meanwhile: its CPU is lost to the count (the sender keeps its connections)
    return total


def one_round(conn, *, tree: Path, env: dict, merchant_id: str, port: int, rate: int, seconds: float) -> dict:
    log = open(Path(tempfile.mkdtemp(prefix="bench-sender-cost-")) / "sender.log", "wb")
    sender = subprocess.Popen([str(wh.BIN / "python"), "manage.py", "deliver_webhooks"], cwd=tree, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(4.0)  # the sender up, its connections open
        wh.receiver_dump(port)
        cpu0, pg0, t0 = si.cpu_seconds(sender.pid), backends_cpu(conn), time.monotonic()
        ids = []
        n = 0
        while time.monotonic() - t0 < seconds:
            due = t0 + n / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            with conn.transaction():
                conn.execute(si.EVENTS_SQL, [merchant_id, "pi_" + os.urandom(12).hex(), wh.SNAPSHOT])
            n += 1
        wall = time.monotonic() - t0
        created = {row[0] for row in conn.execute("SELECT id FROM payments_event")}
        got = wh.wait_received(port, created, timeout=120)
        got.pop("__duplicates__")
        cpu1, pg1 = si.cpu_seconds(sender.pid), backends_cpu(conn)
        conn.execute("DELETE FROM payments_webhookattempt")
        conn.execute("DELETE FROM payments_webhookdelivery")
        conn.execute("DELETE FROM payments_event")
    finally:
        sender.send_signal(signal.SIGTERM)
        try:
            sender.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(sender.pid, signal.SIGKILL)
    delivered = len(got)
    return {"tree": str(tree), "transactions": n, "rate": n / wall, "deliveries": delivered,
            "missing": len(created) - delivered, "sender_ms": 1000 * (cpu1 - cpu0) / max(1, delivered),
            "pg_ms": 1000 * (pg1 - pg0) / max(1, delivered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=130, help="creations (transactions of 2 events) a second (130)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tree", type=Path, help="another checkout whose sender runs beside this one's, for an A/B")
    parser.add_argument("--label", default="")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    started = dt.datetime.now(dt.timezone.utc)
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    env = wh.env_for(32)
    wh.say(f"database {DB_NAME}: drop, create, migrate")
    wh.database_reset()
    wh.manage(env, "migrate", "--no-input", "-v", "0")
    merchant_id = json.loads(wh.manage(env, "create_merchant", "--email", "cost@example.com", "--json"))["merchant_id"]
    port = wh.free_port()
    receiver = subprocess.Popen([sys.executable, str(ROOT / "bench" / "webhooks.py"), "--receiver", str(port)],
                                cwd=ROOT, start_new_session=True)
    trees = [ROOT] + ([args.tree.resolve()] if args.tree else [])
    results: list[dict] = []
    try:
        time.sleep(1.5)
        with wh.psycopg.connect(dbname=DB_NAME, autocommit=True, **wh.PG) as conn:
            wh.endpoint_add(conn, merchant_id, f"http://{wh.HOST}:{port}/ok", env=env)
            for round_ in range(args.rounds):
                for tree in (trees if round_ % 2 == 0 else trees[::-1]):
                    wh.say(f"round {round_ + 1}, sender of {tree}: {args.rate}/s for {args.seconds:g} s")
                    r = one_round(conn, tree=tree, env=env, merchant_id=merchant_id, port=port, rate=args.rate,
                                  seconds=args.seconds)
                    wh.say(f"  {r['deliveries']} deliveries ({r['missing']} missing): sender {r['sender_ms']:.2f} ms,"
                           f" PostgreSQL {r['pg_ms']:.2f} ms of CPU per delivery")
                    results.append(r)
    finally:
        os.killpg(receiver.pid, signal.SIGTERM)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    command = shlex.join([".venv/bin/python", "bench/sender_cost.py", *sys.argv[1:]])
    rows = []
    for tree in trees:
        mine = [r for r in results if r["tree"] == str(tree)]
        name = "this checkout" if tree == ROOT else f"`{tree}`"
        sender_ms = " / ".join(f"{r['sender_ms']:.2f}" for r in mine)
        pg_ms = " / ".join(f"{r['pg_ms']:.2f}" for r in mine)
        rows.append(
            f"| {name} | {statistics.mean(r['rate'] for r in mine):.0f} | {sum(r['deliveries'] for r in mine)} "
            f"({sum(r['missing'] for r in mine)} missing) | {sender_ms} | {pg_ms} |")
    lines = [
        f"## {started:%Y-%m-%d %H:%M} UTC - webhook sender CPU per delivery{' - ' + args.label if args.label else ''}",
        "",
        f"Command: `{command}`. {os.cpu_count()} cores; load average {load_before} before, {load_after} after.",
        "",
        "One `manage.py deliver_webhooks` (production settings) at a time, one test-mode endpoint (a local aiohttp "
        "receiver) subscribed to every event; each transaction inserts a creation's two events in one statement. "
        "CPU from the first commit to the last receipt, per delivery; one figure per round.",
        "",
        "| sender | transactions/s | deliveries | sender CPU ms per delivery | PostgreSQL CPU ms per delivery |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_record:
        with wh.DOC.open("a") as fh:
            fh.write("\n" + section)


if __name__ == "__main__":
    main()
