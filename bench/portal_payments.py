#!/usr/bin/env python
"""The portal's payments list and its CSV export with 1,000,000 intents of one merchant.

    .venv/bin/python bench/portal_payments.py [--intents 1000000] [--repeat 20] [--no-record] [--label TEXT]

One command, from nothing: drops and re-creates the `gateway_bench_portal_payments` database on 127.0.0.1:5432,
migrates it (gateway.settings.production, DEBUG off), creates a merchant with a portal login and a TOTP device, and inserts
--intents test-mode payment intents of that merchant with one INSERT ... SELECT FROM generate_series (one a second
back from now, five statuses, metadata {"order_id": ...}), then ANALYZE. In this process, through Django's test
client with a session verified by TOTP (the whole request path: middleware, session, view, template):

1. the first page of /portal/payments/ (50 rows), --repeat times after a warm-up: median and max;
2. a deep page (?after=<the intent at row 900,000>): median and max;
3. two filtered first pages for information (status=canceled, a fifth of the rows; metadata order_id = one value);
4. the CSV export of the whole list, streamed: rows/s, and this process's RSS before, at its peak while
   streaming (sampled every chunk), and after.

Goals (issue 12): pages < 200 ms; export >= 20,000 rows/s without growing memory. Prints a table and appends a
dated section to docs/benchmarks.md. Nothing but 127.0.0.1 is touched.
"""
import argparse
import datetime as dt
import secrets
import statistics
import subprocess
import time

from chain_common import (
    BIN, DOC, ROOT, append_doc, bench_env, database_reset, django_setup, machine, machine_line, say,
)

DB_NAME = "gateway_bench_portal_payments"
EMAIL = "bench-portal@example.com"
DEEP_ROW = 900_000

INSERT_SQL = """
INSERT INTO payments_paymentintent (id, merchant_id, livemode, status, amount, amount_received, amount_seen,
    currency, description, metadata, receipt_email, return_url, client_secret, networks, cancellation_reason,
    created, updated, idempotency_key)
SELECT 'pi_b' || lpad(g::text, 23, '0'), %(merchant)s, false,
       (ARRAY['requires_action','processing','succeeded','canceled','succeeded'])[1 + g %% 5],
       100 + (g::bigint * 7919) %% 100000,
       CASE WHEN g %% 5 IN (2, 4) THEN 100 + (g::bigint * 7919) %% 100000 ELSE 0 END, 0,
       'usd', 'Order ' || g, jsonb_build_object('order_id', 'A-' || g), '', '',
       'pi_b' || lpad(g::text, 23, '0') || '_secret_' || md5(g::text), '["bsc"]'::jsonb,
       CASE WHEN g %% 5 = 3 THEN 'abandoned' ELSE '' END,
       now() - make_interval(secs => g), now() - make_interval(secs => g), ''
FROM generate_series(1, %(n)s) AS g
"""


def rss_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def setup() -> dict:
    database_reset(DB_NAME)
    env = bench_env(DB_NAME)
    env["ALLOWED_HOSTS"] = "testserver"  # Django's test client
    done = subprocess.run([str(BIN / "python"), str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"migrate failed:\n{done.stdout}{done.stderr}")
    return env


def timed(client, path: str, repeat: int) -> list[float]:
    for _ in range(3):
        assert client.get(path, secure=True).status_code == 200
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path, secure=True)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intents", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    say(f"database {DB_NAME}: create and migrate")
    info = machine()
    django_setup(setup())
    from django.db import connection
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY

    from gateway import otp
    from merchants import services

    merchant = services.merchant_create(email=EMAIL, name="Bench shop", password=secrets.token_urlsafe(16))
    device = otp.totp_device_replace(user=merchant.user, name="bench")
    otp.totp_device_confirm(device=device)
    client = Client()
    client.force_login(merchant.user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()

    say(f"inserting {args.intents:,} intents")
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(INSERT_SQL, {"merchant": merchant.pk, "n": args.intents})
        cursor.execute("ANALYZE payments_paymentintent")
        deep = min(DEEP_ROW, args.intents - 60)
        cursor.execute("SELECT id FROM payments_paymentintent WHERE merchant_id = %s AND NOT livemode "
                       "ORDER BY created DESC, id DESC OFFSET %s LIMIT 1", [merchant.pk, deep])
        deep_id = cursor.fetchone()[0]
    insert_s = time.perf_counter() - start
    say(f"inserted in {insert_s:.1f} s")

    pages = {
        "first page": "/portal/payments/",
        f"deep page (after row {deep:,})": f"/portal/payments/?after={deep_id}",
        "status=canceled, first page": "/portal/payments/?status=canceled",
        "metadata order_id=A-500000 (one match)": "/portal/payments/?metadata_key=order_id&metadata_value=A-500000",
    }
    results = {}
    for name, path in pages.items():
        say(f"timing {name}")
        results[name] = timed(client, path, args.repeat)

    say("exporting CSV")
    rss_before = rss_kib()
    peak = rss_before
    rows = 0
    start = time.perf_counter()
    response = client.get("/portal/payments/export.csv", secure=True)
    for part in response.streaming_content:
        rows += part.count(b"\n")
        peak = max(peak, rss_kib())
    export_s = time.perf_counter() - start
    rss_after = rss_kib()
    rows -= 1  # the header
    assert rows == args.intents, rows
    report(args, info, results, rows, export_s, rss_before, peak, rss_after, insert_s)


def report(args, info, results, rows, export_s, rss_before, peak, rss_after, insert_s) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    load = " / ".join(open("/proc/loadavg").read().split()[:3])
    rate = rows / export_s
    lines = [
        f"## {now:%Y-%m-%d %H:%M} UTC - portal payments list and CSV export{' - ' + args.label if args.label else ''}",
        "",
        f"Command: `.venv/bin/python bench/portal_payments.py --intents {args.intents} --repeat {args.repeat}`",
        "",
        f"{machine_line(info)} Load average at the end {load} (shared with other engineers' test runs).",
        "",
        f"{args.intents:,} test-mode intents "
        f"of one merchant inserted in {insert_s:.0f} s (generate_series); gateway.settings.production (DEBUG off), "
        "Django's test client in the bench's process with a TOTP-verified session: the whole request path, no "
        "network.",
        "",
        "| page | median ms | max ms | goal |",
        "|---|---:|---:|---|",
    ]
    for name, times in results.items():
        goal = "< 200 ms" if name.startswith(("first", "deep")) else "(for information)"
        lines.append(f"| {name} | {statistics.median(times):.1f} | {max(times):.1f} | {goal} |")
    lines += [
        "",
        f"CSV export of all {rows:,} rows, streamed: {export_s:.1f} s, **{rate:,.0f} rows/s**; RSS of the process "
        f"{rss_before / 1024:.0f} MiB before, {peak / 1024:.0f} MiB at its peak while streaming, "
        f"{rss_after / 1024:.0f} MiB after.",
        "",
        "- Goal pages < 200 ms: first "
        f"{statistics.median(results['first page']):.1f} ms, deep "
        f"{statistics.median(next(v for k, v in results.items() if k.startswith('deep'))):.1f} ms (medians): "
        + ("met" if all(statistics.median(v) < 200 for k, v in results.items() if k.startswith(("first", "deep")))
           else "NOT met"),
        f"- Goal export >= 20,000 rows/s without growing memory: {rate:,.0f} rows/s, peak RSS "
        f"+{(peak - rss_before) / 1024:.0f} MiB: {'met' if rate >= 20_000 else 'NOT met'}",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        append_doc(text)
        say(f"appended to {DOC}")


if __name__ == "__main__":
    main()
