#!/usr/bin/env python
"""Webhook delivery: deliveries per second to a local receiver, and the delay from a committed state change to
its receipt, with and without failing endpoints beside the healthy one.

    .venv/bin/python bench/webhooks.py [--events 20000] [--rate 300] [--seconds 15] [--no-record]

One command, from nothing: it drops and re-creates the `gateway_bench_webhooks` database on 127.0.0.1:5432,
migrates it, creates a merchant (`create_merchant`) and test-mode webhook endpoints, starts a receiver (an aiohttp
server in a process of its own on a free 127.0.0.1 port that notes the time each event arrives) and one
`manage.py deliver_webhooks` (gateway.settings.production, GATEWAY_WEBHOOK_ALLOW_LOOPBACK=true for the test-mode
endpoints on 127.0.0.1, the default 10 s timeout). Then:

1. throughput: --events events inserted and committed in one transaction (as if that many state changes committed
   at once), one healthy endpoint: deliveries/s from the commit to the last receipt; the delays of a backlog;
2. delay: events committed at a steady --rate per second for --seconds (a transaction every 20 ms), one healthy
   endpoint: p50/p95/p99/max delay from each commit to the receipt;
3. the same with three more endpoints subscribed to every event: one that never answers (times out after 10 s),
   one on a port where nothing listens (connection refused), one that answers 500. Reported: the healthy
   endpoint's delay, beside run 2's.

The delay is measured from the moment the inserting transaction's COMMIT returned to the moment the receiver read
the request (both clocks of this machine). Prints a table; appends a dated section to docs/benchmarks.md. Only
127.0.0.1 is ever targeted; every process started is stopped at the end.
"""
import argparse
import base64
import datetime as dt
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

# One key for the application secrets per bench run: every process it starts must read the same data key.
SECRETS_KEK = os.environ.setdefault("BENCH_GATEWAY_SECRETS_KEK", base64.b64encode(secrets.token_bytes(32)).decode())

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PG = {"host": HOST, "port": 5432, "user": "root"}
DB_NAME = "gateway_bench_webhooks"
DOC = ROOT / "docs" / "benchmarks.md"


def say(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- the receiver (run as `bench/webhooks.py --receiver PORT`) -----------------------------------------------


def receiver_main(port: int) -> None:
    import asyncio

    from aiohttp import web

    seen: list[tuple[str, str, float]] = []

    async def ok(request):
        body = await request.read()
        seen.append(("ok", json.loads(body)["id"], time.time()))
        return web.Response(text='{"ok":true}')

    async def fail(request):
        body = await request.read()
        seen.append(("500", json.loads(body)["id"], time.time()))
        return web.Response(status=500, text="boom")

    async def hang(request):
        await request.read()
        seen.append(("hang", "", time.time()))
        await asyncio.sleep(3600)
        return web.Response()

    async def dump(request):
        data = list(seen)
        seen.clear()
        return web.json_response(data)

    app = web.Application()
    app.add_routes([web.post("/ok", ok), web.post("/500", fail), web.post("/hang", hang), web.get("/dump", dump)])
    web.run_app(app, host=HOST, port=port, access_log=None, print=None, backlog=4096)


def receiver_dump(port: int) -> list:
    import urllib.request

    with urllib.request.urlopen(f"http://{HOST}:{port}/dump", timeout=30) as response:
        return json.loads(response.read())


# --- set-up -------------------------------------------------------------------------------------------------


def env_for(concurrency: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GATEWAY_", "DEBUG"))}
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        GATEWAY_KEK=base64.b64encode(secrets.token_bytes(32)).decode(),
        GATEWAY_SECRETS_KEK=SECRETS_KEK,
        DATABASE_URL=f"postgres://{PG['user']}@{HOST}:{PG['port']}/{DB_NAME}",
        GATEWAY_PUBLIC_URL=f"http://{HOST}:8000", ALLOWED_HOSTS=HOST, LOG_LEVEL="WARNING",
        GATEWAY_WEBHOOK_ALLOW_LOOPBACK="true", PYTHONDONTWRITEBYTECODE="1",
        GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY=str(concurrency),
    )
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([str(BIN / "python"), str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def database_reset() -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


SEAL_SECRET = ("from merchants.models import WebhookEndpoint as E; e = E.objects.get(id={!r}); "
               "e.secret = 'whsec_' + __import__('secrets').token_hex(16); e.save(update_fields=['secret'])")


def endpoint_add(conn, merchant_id: str, url: str, *, env: dict) -> str:
    """A test-mode endpoint subscribed to every event, created an hour ago (so no delivery is older than it); its
    signing secret is sealed by the gateway itself (merchants.secrets: encrypted at rest under the env's key)."""
    endpoint_id = "we_" + secrets.token_hex(12)
    conn.execute(
        "INSERT INTO merchants_webhookendpoint (id, merchant_id, livemode, url, description, metadata, enabled_events,"
        " status, disabled_reason, secret, previous_secret, deleted, consecutive_failures, created, updated) VALUES"
        " (%s, %s, false, %s, '', '{}', '[\"*\"]', 'enabled', '', '', '', false, 0, now() - interval '1 hour', now())",
        [endpoint_id, merchant_id, url])
    manage(env, "shell", "--no-imports", "-c", SEAL_SECRET.format(endpoint_id))
    return endpoint_id


EVENT_SQL = (
    "INSERT INTO payments_event (id, merchant_id, livemode, type, object_id, sequence, data, request_id,"
    " idempotency_key, created) SELECT 'evt_' || md5(random()::text || g::text), %s, false,"
    " 'payment_intent.succeeded', 'pi_' || md5(random()::text || g::text), 1, %s::jsonb, '', '', clock_timestamp()"
    " FROM generate_series(1, %s) g RETURNING id"
)
SNAPSHOT = json.dumps({"object": {"id": "pi_bench", "object": "payment_intent", "amount": 1999, "currency": "usd",
                                  "status": "succeeded", "metadata": {"order_id": "A-1"}}})


def insert_events(conn, merchant_id: str, n: int) -> tuple[list[str], float]:
    with conn.transaction():
        ids = [row[0] for row in conn.execute(EVENT_SQL, [merchant_id, SNAPSHOT, n]).fetchall()]
    return ids, time.time()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def stats(delays: list[float]) -> dict:
    return {p: percentile(delays, p) * 1000 for p in (50, 95, 99, 100)}


# --- the runs -----------------------------------------------------------------------------------------------


def wait_received(port: int, ids: set, timeout: float, path: str = "ok") -> dict:
    """{event id: first receipt time} for `ids` on `path`, until all arrived or `timeout`."""
    got: dict[str, float] = {}
    extra = 0
    deadline = time.monotonic() + timeout
    while len(got) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.2)
        for kind, event_id, at in receiver_dump(port):
            if kind == path and event_id in ids:
                if event_id in got:
                    extra += 1
                got[event_id] = min(at, got.get(event_id, at))
    got["__duplicates__"] = extra
    return got


def run_throughput(conn, merchant_id: str, port: int, n: int) -> dict:
    receiver_dump(port)
    ids, committed = insert_events(conn, merchant_id, n)
    got = wait_received(port, set(ids), timeout=max(120, n / 50))
    duplicates = got.pop("__duplicates__")
    last = max(got.values())
    delays = [got[i] - committed for i in ids if i in got]
    return {"events": n, "received": len(got), "duplicates": duplicates, "seconds": last - committed,
            "per_second": len(got) / (last - committed), "delay": stats(delays)}


def run_steady(conn, merchant_id: str, port: int, rate: int, seconds: float) -> dict:
    receiver_dump(port)
    per_tick = max(1, round(rate * 0.02))
    commits: dict[str, float] = {}
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        ids, committed = insert_events(conn, merchant_id, per_tick)
        for event_id in ids:
            commits[event_id] = committed
        tick += 1
        pause = start + tick * 0.02 - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.monotonic() - start
    got = wait_received(port, set(commits), timeout=60)
    duplicates = got.pop("__duplicates__")
    delays = [got[i] - commits[i] for i in commits if i in got]
    return {"events": len(commits), "rate": len(commits) / elapsed, "received": len(got), "duplicates": duplicates,
            "delay": stats(delays)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=300, help="events per second in the delay runs")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32, help="GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY (32)")
    parser.add_argument("--senders", type=int, default=1, help="deliver_webhooks processes (1)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--label", default="")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        return receiver_main(args.receiver)

    env = env_for(args.concurrency)
    procs: list[subprocess.Popen] = []
    try:
        say("database ...")
        database_reset()
        manage(env, "migrate", "--no-input", "-v", "0")
        merchant_id = json.loads(manage(env, "create_merchant", "--email", "bench@example.com", "--json"))["merchant_id"]
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, __file__, "--receiver", str(port)], cwd=ROOT,
                                      start_new_session=True))
        conn = psycopg.connect(dbname=DB_NAME, autocommit=True, **PG)
        healthy = endpoint_add(conn, merchant_id, f"http://{HOST}:{port}/ok", env=env)
        sender_log = open(ROOT / "bench" / ".webhooks-sender.log", "w")
        for _ in range(args.senders):
            procs.append(subprocess.Popen([str(BIN / "python"), "manage.py", "deliver_webhooks"], cwd=ROOT,
                                          env=env, stdout=sender_log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        time.sleep(1.0)
        for _ in range(100):
            try:
                receiver_dump(port)
                break
            except OSError:
                time.sleep(0.1)
        say("warm-up ...")
        run_throughput(conn, merchant_id, port, 500)
        say(f"throughput: {args.events} events in one commit ...")
        throughput = run_throughput(conn, merchant_id, port, args.events)
        say(throughput)
        say(f"steady {args.rate}/s, healthy endpoint only ...")
        alone = run_steady(conn, merchant_id, port, args.rate, args.seconds)
        say(alone)
        endpoint_add(conn, merchant_id, f"http://{HOST}:{port}/hang", env=env)
        endpoint_add(conn, merchant_id, f"http://{HOST}:{free_port()}/refused", env=env)
        endpoint_add(conn, merchant_id, f"http://{HOST}:{port}/500", env=env)
        say(f"steady {args.rate}/s, beside a timing-out, a refusing and a 500 endpoint ...")
        beside = run_steady(conn, merchant_id, port, args.rate, args.seconds)
        say(beside)
        attempts = dict(conn.execute(
            "SELECT e.url, count(*) FROM payments_webhookattempt a JOIN payments_webhookdelivery d"
            " ON d.id = a.delivery_id JOIN merchants_webhookendpoint e ON e.id = d.endpoint_id GROUP BY e.url"
        ).fetchall())
        lost = conn.execute("SELECT count(*) FROM payments_webhookdelivery WHERE endpoint_id = %s"
                            " AND status <> 'succeeded'", [healthy]).fetchone()[0]
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    report(args, throughput, alone, beside, attempts, lost)


def fmt(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


def report(args, throughput, alone, beside, attempts, lost) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    load = open("/proc/loadavg").read().split()[:3]
    d = throughput["delay"]
    lines = [
        f"## {now:%Y-%m-%d %H:%M} UTC - webhook delivery{' - ' + args.label if args.label else ''}",
        "",
        f"Command: `.venv/bin/python bench/webhooks.py --events {args.events} --rate {args.rate} "
        f"--seconds {args.seconds:g} --concurrency {args.concurrency} --senders {args.senders}`",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}; "
        f"load average at the end {' / '.join(load)}. **Shared at the time with other engineers' test runs and "
        "benchmarks**: the figures are lower bounds of what the code does on a quiet machine.",
        "",
        f"Set-up: {args.senders} x `manage.py deliver_webhooks` (gateway.settings.production, "
        f"{args.concurrency} requests in flight per endpoint and sender, 10 s timeout, claims of 200); a receiver in its own process (aiohttp, 127.0.0.1); events "
        "inserted with one multi-row INSERT per transaction by the bench, through psycopg. Delay: from the COMMIT "
        "returning to the receiver reading the request.",
        "",
        "| run | events | deliveries/s | delay p50 ms | p95 ms | p99 ms | max ms | received | duplicates |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| throughput: {throughput['events']:,} events in one commit, 1 endpoint | {throughput['events']:,} | "
        f"{throughput['per_second']:,.0f} | {fmt(d[50])} | {fmt(d[95])} | {fmt(d[99])} | {fmt(d[100])} | "
        f"{throughput['received']:,} | {throughput['duplicates']} |",
    ]
    for name, run in (("healthy endpoint alone", alone),
                      ("healthy endpoint beside timeout + refused + 500 endpoints", beside)):
        d = run["delay"]
        lines.append(f"| steady {run['rate']:,.0f}/s for {args.seconds:g} s: {name} | {run['events']:,} | "
                     f"{run['rate']:,.0f} | {fmt(d[50])} | {fmt(d[95])} | {fmt(d[99])} | {fmt(d[100])} | "
                     f"{run['received']:,} | {run['duplicates']} |")
    lines += [
        "",
        "Attempts recorded per endpoint URL: " + ", ".join(f"`{u.rsplit('/', 1)[1]}` {n:,}"
                                                         for u, n in sorted(attempts.items())) + ".",
        f"Deliveries to the healthy endpoint not succeeded at the end: {lost}.",
        "",
        f"- Goal >= 1,000 deliveries/s: {throughput['per_second']:,.0f}/s: "
        f"{'met' if throughput['per_second'] >= 1000 else 'NOT met'}",
        f"- Goal p99 first-attempt delay <= 1 s (steady {alone['rate']:,.0f}/s): {fmt(alone['delay'][99])} ms: "
        f"{'met' if alone['delay'][99] <= 1000 else 'NOT met'}; beside failing endpoints: "
        f"{fmt(beside['delay'][99])} ms",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with DOC.open("a") as doc:
            doc.write("\n" + text)
        say(f"appended to {DOC}")


if __name__ == "__main__":
    main()
