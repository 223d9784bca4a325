#!/usr/bin/env python
"""The webhook sender's CPU when nobody is subscribed: `manage.py deliver_webhooks` while payment intents' events are
committed at a steady rate for a merchant without any webhook endpoint, with the NOTIFY trigger of migration
payments/0004 (every event statement wakes the sender) and with that of 0005 (only events an endpoint subscribes to).

    .venv/bin/python bench/sender_idle.py [--rate 110] [--seconds 20] [--no-record]

Drops and re-creates `gateway_bench_sender` (BENCH_DB_NAME), migrates it, creates a merchant; starts one
`manage.py deliver_webhooks` (gateway.settings.production). Per trigger: commits `--rate` transactions a second for
`--seconds`, each inserting the two events of a creation in one statement (`payment_intent.created` and
`payment_intent.requires_action`, as payments.services.payment_intent_create writes them), and reads the sender's
CPU time (utime + stime of its process, /proc/<pid>/stat) before and after. The "before" trigger is put back with
migration 0005's reverse SQL, the "after" one with its forward SQL, on the same database and the same sender.
Appends the table to docs/benchmarks.md. Only 127.0.0.1.
"""
import argparse
import datetime as dt
import importlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import webhooks as wh  # bench/ is on sys.path when this file runs as a script

ROOT = wh.ROOT
sys.path.insert(0, str(ROOT))
DB_NAME = wh.DB_NAME = os.environ.get("BENCH_DB_NAME", "gateway_bench_sender")
TRIGGER = importlib.import_module("payments.migrations.0005_notify_only_subscribed")
CLK_TCK = os.sysconf("SC_CLK_TCK")

EVENTS_SQL = (
    "INSERT INTO payments_event (id, merchant_id, livemode, type, object_id, sequence, data, request_id,"
    " idempotency_key, created) SELECT 'evt_' || md5(random()::text || t), %s, false, t, %s, seq, %s::jsonb, '', '',"
    " clock_timestamp() FROM unnest(ARRAY['payment_intent.created', 'payment_intent.requires_action'])"
    " WITH ORDINALITY AS x(t, seq)"
)


def cpu_seconds(pid: int) -> float:
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def steady(conn, merchant_id: str, rate: int, seconds: float, sender_pid: int) -> dict:
    time.sleep(2.0)  # the sender settles (the previous run's events fanned out)
    cpu0, t0 = cpu_seconds(sender_pid), time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - t0) < seconds:
        due = t0 + n / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        with conn.transaction():
            conn.execute(EVENTS_SQL, [merchant_id, "pi_" + secrets.token_hex(12), wh.SNAPSHOT])
        n += 1
    cpu1, t1 = cpu_seconds(sender_pid), time.monotonic()
    return {"transactions": n, "rate": n / (t1 - t0), "cpu": cpu1 - cpu0, "wall": t1 - t0,
            "share": (cpu1 - cpu0) / (t1 - t0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=110, help="creations (transactions of 2 events) a second (110)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--label", default="")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    started = dt.datetime.now(dt.timezone.utc)
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    env = wh.env_for(32)
    wh.say(f"database {DB_NAME}: drop, create, migrate")
    wh.database_reset()
    wh.manage(env, "migrate", "--no-input", "-v", "0")
    merchant_id = json.loads(wh.manage(env, "create_merchant", "--email", "idle@example.com", "--json"))["merchant_id"]
    log = open(Path(tempfile.mkdtemp(prefix="bench-sender-")) / "sender.log", "wb")
    sender = subprocess.Popen([str(wh.BIN / "python"), "manage.py", "deliver_webhooks"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    results = {}
    try:
        with wh.psycopg.connect(dbname=DB_NAME, autocommit=True, **wh.PG) as conn:
            time.sleep(3.0)  # the sender up
            for name, sql in (("0004: every event statement notifies", TRIGGER.DROP),
                              ("0005: only events an endpoint subscribes to", TRIGGER.CREATE)):
                conn.execute(sql)
                wh.say(f"{name}: {args.rate}/s for {args.seconds:g} s")
                results[name] = steady(conn, merchant_id, args.rate, args.seconds, sender.pid)
                wh.say(f"  sender CPU {results[name]['cpu']:.2f} s in {results[name]['wall']:.1f} s "
                       f"({100 * results[name]['share']:.1f}% of a core)")
            left = conn.execute("SELECT count(*) FROM payments_event WHERE fanned_out_at IS NULL").fetchone()[0]
    finally:
        sender.send_signal(signal.SIGTERM)
        try:
            sender.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(sender.pid, signal.SIGKILL)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    command = shlex.join([".venv/bin/python", "bench/sender_idle.py", *sys.argv[1:]])
    lines = [
        f"## {started:%Y-%m-%d %H:%M} UTC - webhook sender with no endpoint{' - ' + args.label if args.label else ''}",
        "",
        f"Command: `{command}`. {os.cpu_count()} cores; load average {load_before} before, {load_after} after.",
        "",
        "One `manage.py deliver_webhooks` (production settings, 0.5 s poll), a merchant without any endpoint; "
        "each transaction inserts a creation's two events in one statement.",
        "",
        "| NOTIFY trigger | transactions/s | sender CPU s / wall s | share of a core |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {r['rate']:.0f} | {r['cpu']:.2f} / {r['wall']:.1f} | {100 * r['share']:.1f}% |"
          for name, r in results.items()],
        "",
        f"Events left not fanned out at the end: {left} (the poll marks them; none is lost).",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_record:
        with wh.DOC.open("a") as fh:
            fh.write("\n" + section)


if __name__ == "__main__":
    main()
