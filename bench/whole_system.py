#!/usr/bin/env python
"""The whole gateway running, as deployed: POST /v1/payment_intents through the production web server while the
Celery worker, beat, the chain watcher and the webhook sender run beside it and one webhook endpoint receives every
event; beside the same web server alone.

    .venv/bin/python bench/whole_system.py [--duration 10] [--connections 16,1000] [--no-record]

One command, from nothing: drops and re-creates the `gateway_bench_whole` database (BENCH_DB_NAME), migrates it,
`wallet init`, a merchant and an `sk_test_` key; starts anvil with `manage.py devchain --no-wait` (the test-mode
`bsc` network on 127.0.0.1) and the production web server `scripts/serve.sh` (gateway.settings.production). Then:

at each number of connections, back to back (this machine's load moves from one minute to the next):

1. web only: wrk (bench/create_intents.lua, no Idempotency-Key) against the web server alone;
2. the whole system: `celery -A gateway worker -Q default,chain,webhooks -c 2`, `celery -A gateway beat`,
   `manage.py watch` and `manage.py deliver_webhooks` started (and waited for), a test-mode endpoint on 127.0.0.1
   (bench/webhooks.py's aiohttp receiver) subscribed to every event, and wrk again; then it waits until every event
   of the run has been delivered and reports how long that took after wrk stopped, and stops those processes.

During every run a thread samples pg_stat_activity every 200 ms: client connections to the bench database (the
benchmark's own two excluded), the maximum during the run and after it (until the server is idle again), against
PostgreSQL's max_connections. Checks afterwards: every 2xx is an intent and every event reached the receiver.
Prints a table, appends a dated section to docs/benchmarks.md with the machine and its load (uptime before and
after). Every process started is stopped at the end. Only 127.0.0.1 is ever talked to.
"""
import argparse
import datetime as dt
import json
import os
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import create_intents as ci  # bench/ is on sys.path when this file runs as a script
import webhooks as wh

ROOT, BIN, HOST = ci.ROOT, ci.BIN, ci.HOST
DB_NAME = ci.DB_NAME = os.environ.get("BENCH_DB_NAME", "gateway_bench_whole")  # ci's helpers read it
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")  # the benchmarks' own Redis database
say = ci.say
WEB_APP = "gateway-web"  # the web server's connections carry this application_name


# --- connections ---------------------------------------------------------------------------------------------------


class ConnectionSampler(threading.Thread):
    """Client connections to the bench database every 200 ms (the benchmark's own excluded): max since mark()."""

    def __init__(self, own_pids: set[int]):
        super().__init__(daemon=True)
        self.own = own_pids
        self.current = 0
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        with ci.pg_connect("postgres") as conn:
            self.own.add(conn.info.backend_pid)
            while not self.done.is_set():
                pids = [pid for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
                    [DB_NAME]).fetchall()]
                self.current = len([p for p in pids if p not in self.own])
                self.peak = max(self.peak, self.current)
                self.done.wait(0.2)

    def mark(self) -> int:
        """The maximum since the last mark."""
        peak, self.peak = self.peak, self.current
        return peak


# --- processes ----------------------------------------------------------------------------------------------------


def start(name: str, cmd: list[str], env: dict, logdir: Path) -> subprocess.Popen:
    """The process, its output appended to logdir/<name>.log (`ready_seen`: the worker's "ready." lines before)."""
    path = logdir / f"{name}.log"
    seen = path.read_bytes().count(b"ready.") if path.exists() else 0
    log = open(path, "ab")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.ready_seen = seen
    return proc


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each process started here, SIGKILL to its own session if it hangs."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def system_commands() -> dict[str, list[str]]:
    py = str(BIN / "python")
    return {
        "worker": [py, "-m", "celery", "-A", "gateway", "worker", "-Q", "default,chain,webhooks", "-c", "2",
                   "-l", "info"],
        "beat": [py, "-m", "celery", "-A", "gateway", "beat", "-l", "warning"],
        "watch": [py, "manage.py", "watch"],
        "sender": [py, "manage.py", "deliver_webhooks"],
    }


def system_ready(db, procs: dict[str, subprocess.Popen], logdir: Path, timeout: float = 180) -> None:
    """Until the sender LISTENs, the worker said "ready" and beat's first deliver_webhooks has been handled (its
    start-up is not part of a run)."""
    deadline = time.monotonic() + timeout
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}: {(logdir / f'{name}.log').read_text()}")
        listening = db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN %%'",
                               [DB_NAME]).fetchone()[0]
        worker_ready = (logdir / "worker.log").read_bytes().count(b"ready.") > procs["worker"].ready_seen
        if listening and worker_ready:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the system was not up after {timeout} s (sender listening: {bool(listening)}, "
                             f"worker ready: {worker_ready}); logs in {logdir}")
        time.sleep(0.5)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- a run ------------------------------------------------------------------------------------------------------


def events_delivered(db, since) -> tuple[int, int]:
    """(events, events delivered to the endpoint) among the events created after `since`."""
    return db.execute(
        "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM payments_webhookdelivery d "
        "WHERE d.event_id = e.id AND d.status = 'succeeded')) FROM payments_event e WHERE e.created > %s",
        [since]).fetchone()


def cpu_ticks(procs: dict[str, subprocess.Popen]) -> dict[str, int]:
    return {name: sum(ci._descendants(proc.pid).values()) for name, proc in procs.items()}


def one_run(*, args, port, key, db, sampler, connections, whole: bool, server_pid: int,
            system: dict[str, subprocess.Popen] | None = None) -> dict:
    tag = f"{'w' if whole else 's'}{connections}{secrets.token_hex(3)}"
    db.execute("ANALYZE")
    started_at = db.execute("SELECT now()").fetchone()[0]
    sampler.mark()
    say(f"{'whole system' if whole else 'web only'}: {connections} connections, {args.duration} s")
    system_before = cpu_ticks(system or {})
    r = ci.run_wrk(port=port, key=key, connections=connections, duration=args.duration, idempotent=False, tag=tag,
                   threads=args.threads, timeout=args.timeout, sampler=ci.CpuSampler(server_pid, db))
    wrk_stopped = time.monotonic()
    # CPU while wrk ran, in % of one core: the web server, PostgreSQL's backends, and each other process
    wall = r["cpu"]["wall"]
    r["cpu_split"] = {"web": r["cpu"]["server"] / wall, "PostgreSQL": (r["cpu"]["pg"] + r["cpu"]["pg_bg"]) / wall,
                      **{name: (ticks - system_before[name]) / ci.CLK_TCK / wall
                         for name, ticks in cpu_ticks(system or {}).items()}}
    busy = r["cpu"]["busy"] / wall
    r["cpu_split"]["other (the machine's other load)"] = max(0.0, busy - sum(r["cpu_split"].values()))
    r["pg_during"] = sampler.mark()
    ci.wait_idle(db, application_name=WEB_APP)
    r["pg_after"] = max(sampler.mark(), sampler.current)
    r.update(connections=connections, whole=whole, ok=r["requests"] - r["non2xx"], in_flight=r["sent"] - r["requests"])
    # this run's intents, by the tag in their metadata (on a loaded machine a request of the run before can still
    # be queued in the server when this one starts)
    created = db.execute("SELECT count(*) FROM payments_paymentintent WHERE metadata->>'order_id' LIKE %s",
                         [tag + "-%"]).fetchone()[0]
    if not r["ok"] <= created <= r["ok"] + r["in_flight"]:
        raise SystemExit(f"{created} intents in the database for {r['ok']} 2xx answers:\n{r['raw']}")
    r["created"] = created
    if whole:  # every event of the run delivered: how long after wrk stopped
        deadline = time.monotonic() + args.drain_timeout
        while True:
            events, delivered = events_delivered(db, started_at)
            if events and delivered == events:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{events - delivered} of {events} events not delivered {args.drain_timeout} s "
                                 "after wrk stopped")
            time.sleep(0.5)
        r["events"] = events
        r["drained_after"] = time.monotonic() - wrk_stopped
    say(f"  {r['rps']:,.0f}/s p50 {ci.fmt_ms(r['p50'])} ms p99 {ci.fmt_ms(r['p99'])} ms, errors "
        f"{r['non2xx'] + sum(r['socket_errors'].values())}, PostgreSQL connections max {r['pg_during']} during, "
        f"{r['pg_after']} after" + (f", {r['events']} events delivered {r['drained_after']:.1f} s after wrk stopped"
                                    if whole else ""))
    return r


# --- report -------------------------------------------------------------------------------------------------------


def report(*, args, info, results, bound, max_connections, up_before, up_after, started, command, server_desc,
           received) -> str:
    lines = [
        f"## {started:%Y-%m-%d %H:%M} UTC - whole system{' - ' + args.label if args.label else ''}",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram_gib']} GiB RAM, Linux {info['kernel']}, "
        f"Python {info['python']}, PostgreSQL {info['postgresql']} (max_connections {max_connections}), "
        f"{info['wrk']} on the same machine. Load: `{up_before}` before, `{up_after}` after (other engineers' test "
        "suites share this machine: compare the two columns of one run, not runs of different days).",
        "",
        f"Web: {server_desc}. Whole system: that, plus `celery -A gateway worker -Q default,chain,webhooks -c 2`, "
        "`celery -A gateway beat`, `manage.py watch` (anvil devnet, 1 s blocks), `manage.py deliver_webhooks`, and one "
        "test-mode endpoint on 127.0.0.1 subscribed to every event (an aiohttp receiver). gateway.settings.production. "
        f"wrk: {args.threads} threads, {args.duration} s per run, --timeout {args.timeout} s, no Idempotency-Key.",
        "",
        "| connections | set-up | creations/s | p50 ms | p99 ms | max ms | 2xx | errors (non-2xx, socket) "
        "| PG connections max: during / after | events delivered, last one after wrk stopped | whole / web only "
        "| CPU while wrk ran, % of one core |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|---|---:|---|",
    ]
    web = {r["connections"]: r for r in results if not r["whole"]}
    for r in results:
        errors = r["non2xx"] + sum(r["socket_errors"].values())
        ratio = f"{100 * r['rps'] / web[r['connections']]['rps']:.0f}%" if r["whole"] and r["connections"] in web \
            else ""
        lines.append(
            f"| {r['connections']:,} | {'whole system' if r['whole'] else 'web only'} | {r['rps']:,.0f} "
            f"| {ci.fmt_ms(r['p50'])} | {ci.fmt_ms(r['p99'])} | {ci.fmt_ms(r['max'])} | {r['ok']:,} | {errors} "
            f"| {r['pg_during']} / {r['pg_after']} "
            f"| {(str(r['events']) + ', ' + format(r['drained_after'], '.1f') + ' s') if r['whole'] else ''} "
            f"| {ratio} | {', '.join(f'{k} {100 * v:.0f}' for k, v in r['cpu_split'].items())} |")
    lines += [
        "",
        f"Bound on PostgreSQL connections (docs/deploy.md): web {bound['web']} (workers x threads) + worker "
        f"{bound['worker']} + beat {bound['beat']} + watch {bound['watch']} + sender {bound['sender']} = "
        f"**{sum(bound.values())}**, of max_connections {max_connections}. Measured maximum: "
        f"{max(r['pg_during'] for r in results)} (the benchmark's own connections excluded). Receiver: "
        f"{received} POSTs.",
        "",
    ]
    for c, w in web.items():
        for r in results:
            if r["whole"] and r["connections"] == c:
                errors = r["non2xx"] + sum(r["socket_errors"].values())
                lines.append(f"- {c:,} connections: whole system {100 * r['rps'] / w['rps']:.0f}% of web only "
                             f"(goal >= 70%: {'met' if r['rps'] >= 0.7 * w['rps'] else 'NOT met'}), {errors} errors")
    return "\n".join(lines) + "\n"


# --- main ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", default="16,1000", help="comma-separated levels (16,1000)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--timeout", type=int, default=80, help="wrk's timeout, Stripe's SDKs' (80 s)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up at 16 connections (3)")
    parser.add_argument("--drain-timeout", type=int, default=300, help="seconds to wait for the webhooks (300)")
    parser.add_argument("--label", default="")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",") if c.strip()]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(max(levels) * 2 + 256, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
    if shutil.which("wrk") is None:
        sys.exit("whole_system: wrk is not installed (`bash scripts/setup.sh --bench`)")

    started = dt.datetime.now(dt.timezone.utc)
    up_before = uptime()
    command = shlex.join([".venv/bin/python", "bench/whole_system.py", *sys.argv[1:]])
    info = ci.machine()
    port = ci.free_port()
    env = ci.server_env(port)
    env.update(REDIS_URL=REDIS_URL, CELERY_BROKER_URL=REDIS_URL, GATEWAY_WEBHOOK_ALLOW_LOOPBACK="true")
    say(f"database {DB_NAME}: drop, create, migrate")
    ci.database_reset()
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    ci.manage(env, "migrate", "--no-input")
    ci.manage(env, "wallet", "init", "--json")
    email = f"bench-{secrets.token_hex(4)}@example.com"
    merchant_id = json.loads(ci.manage(env, "create_merchant", "--email", email, "--json"))["merchant_id"]
    key = json.loads(ci.manage(env, "create_api_key", "--merchant", email, "--mode", "test", "--json"))["secret_key"]
    chain = json.loads(ci.manage(env, "devchain", "--port", str(ci.free_port()), "--block-time", "1", "--no-wait"))
    env[chain["rpc_env"]] = chain["rpc_url"]
    anvil_pid = chain.get("anvil_pid")

    logdir = Path(tempfile.mkdtemp(prefix="bench-whole-"))
    web_env = {**env, "DATABASE_URL": env["DATABASE_URL"] + f"?application_name={WEB_APP}"}
    cmd, server_desc = ci.server_command(argparse.Namespace(server="granian", workers=None, worker_class=None,
                                                            threads=None), port, web_env)
    web_proc, procs, results = None, [], []
    sampler = ConnectionSampler(set())
    try:
        say(f"starting {server_desc} (logs in {logdir})")
        web_proc = ci.server_start(cmd, web_env, port, logdir / "server.log")
        with ci.pg_connect(DB_NAME) as db, ci.pg_connect("postgres") as pg:
            sampler.own.update({db.info.backend_pid, pg.info.backend_pid})
            max_connections = int(pg.execute("SHOW max_connections").fetchone()[0])
            sampler.start()
            if args.warmup:
                ci.run_wrk(port=port, key=key, connections=16, duration=args.warmup, idempotent=False, tag="warm",
                           threads=args.threads, timeout=args.timeout, sampler=None)
                ci.wait_idle(db)
            receiver_port = ci.free_port()
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench" / "webhooks.py"), "--receiver",
                                           str(receiver_port)], cwd=ROOT, start_new_session=True))
            wh.endpoint_add(db, merchant_id, f"http://{HOST}:{receiver_port}/ok", env=env)
            # Per level, back to back (this machine's load moves from one minute to the next): the web server
            # alone, then with the rest of the system started for the run and stopped after it.
            for c in levels:
                results.append(one_run(args=args, port=port, key=key, db=db, sampler=sampler, connections=c,
                                       whole=False, server_pid=web_proc.pid))
                # the web-only run's events are not the whole system's work
                db.execute("UPDATE payments_event SET fanned_out_at = now() WHERE fanned_out_at IS NULL")
                system = {name: start(name, line, env, logdir) for name, line in system_commands().items()}
                try:
                    system_ready(db, system, logdir)
                    ci.wait_idle(db, application_name=WEB_APP)
                    results.append(one_run(args=args, port=port, key=key, db=db, sampler=sampler, connections=c,
                                           whole=True, server_pid=web_proc.pid, system=system))
                finally:
                    stop(list(system.values()))
            received = len(wh.receiver_dump(receiver_port))
    finally:
        sampler.done.set()
        stop(procs)
        ci.server_stop(web_proc)
        if anvil_pid:  # devchain started it in a session of its own: its npm wrapper and the native binary
            for signum in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(anvil_pid, signum)
                except ProcessLookupError:
                    break
                time.sleep(2.0)
    workers = int(web_env.get("GATEWAY_WEB_WORKERS") or ci.GRANIAN_WORKERS)
    threads = int(web_env.get("GATEWAY_WEB_THREADS") or 1)
    # Celery prefork: 2 children, each one connection when it runs a task; beat's DatabaseScheduler 1; the watcher
    # one per network thread (1 network with an RPC URL here) + 1; the sender 2 (its database thread, LISTEN).
    bound = {"web": workers * threads, "worker": 2, "beat": 1, "watch": 2, "sender": 2}
    section = report(args=args, info=info, results=results, bound=bound, max_connections=max_connections,
                     up_before=up_before, up_after=uptime(), started=started, command=command,
                     server_desc=server_desc, received=received)
    print(section)
    if not args.no_record:
        ci.append_doc(section)
        say(f"appended to {ci.DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
