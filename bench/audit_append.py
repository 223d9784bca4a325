#!/usr/bin/env python
"""What the audit trail's one head row (locked FOR UPDATE by every append until its transaction commits) costs the
writes that record themselves.

    .venv/bin/python bench/audit_append.py [--seconds 8] [--threads 1,4,16] [--no-record]

Resets the `gateway_bench_audit` database (PostgreSQL on 127.0.0.1, migrated), then for each number of threads runs,
for --seconds each, transactions of two kinds one after the other: "write" inserts one row into a scratch table (a
stand-in for the state change of an audited service call), "write + audit" does the same and then `audit_record`
with a before/after of a few fields, as a service does (last in its transaction). Prints transactions/s and the
latency percentiles of each, and checks with `audit verify` that the chain is whole afterwards. Appends the table to
docs/benchmarks.md with the machine and the date. Only 127.0.0.1.
"""
import argparse
import datetime as dt
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain_common import append_doc, bench_env, database_reset, django_setup, load_average, machine, machine_line, percentile  # noqa: E402,E501

DB_NAME = "gateway_bench_audit"


def run(kind: str, threads: int, seconds: float) -> dict:
    from django.db import connection, transaction

    from audit.actors import Actor
    from audit.services import ObjectRef, audit_record

    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    actor = Actor(type="api_key", id="key_bench", label="bench")

    def worker(n: int) -> None:
        mine = []
        try:
            i = 0
            while time.monotonic() < stop_at:
                start = time.perf_counter()
                with transaction.atomic():
                    with connection.cursor() as cursor:
                        cursor.execute("INSERT INTO bench_audit_work (payload) VALUES (%s)", [f"{n}-{i}"])
                    if kind == "write + audit":
                        audit_record(actor=actor, action="payout.create", obj=ObjectRef("bench.payout", f"{n}-{i}"),
                                     before=None, after={"amount": 10**18 + i, "status": "pending", "to": "0x" + "ab" * 20},
                                     reason="bench")
                mine.append((time.perf_counter() - start) * 1000)
                i += 1
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    began = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - began
    return {"kind": kind, "threads": threads, "tps": len(latencies) / elapsed,
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", default="1,4,16")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    database_reset(DB_NAME)
    django_setup(bench_env(DB_NAME))
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_audit_work (id bigserial PRIMARY KEY, payload text NOT NULL)")
    connection.close()
    info, load_before = machine(), load_average()
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for kind in ("write", "write + audit"):
            row = run(kind, threads, args.seconds)
            rows.append(row)
            print(f"{kind:>14} x{threads:<3} {row['tps']:8.0f} tx/s  p50 {row['p50']:6.1f} ms  p99 {row['p99']:6.1f} ms",
                  flush=True)
    from audit.verify import audit_chain_verify

    report = audit_chain_verify()
    print(f"audit verify: {'OK' if report.ok else report.problem} ({report.records} records)")
    if args.no_record:
        return
    table = ["| threads | write tx/s | p50 / p99 ms | write + audit tx/s | p50 / p99 ms |", "|---|---|---|---|---|"]
    for plain, audited in zip(rows[::2], rows[1::2]):
        table.append(f"| {plain['threads']} | {plain['tps']:.0f} | {plain['p50']:.1f} / {plain['p99']:.1f} | "
                     f"{audited['tps']:.0f} | {audited['p50']:.1f} / {audited['p99']:.1f} |")
    append_doc("\n".join([
        f"## Audit trail appends (`bench/audit_append.py`), {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "", machine_line(info) + f" Load average before: {load_before}; after: {load_average()}.",
        f"Command: `.venv/bin/python bench/audit_append.py --seconds {args.seconds:g} --threads {args.threads}`; "
        f"audit verify afterwards: {'OK' if report.ok else 'BROKEN'} over {report.records} records.", "",
        *table, "",
    ]))


if __name__ == "__main__":
    main()
