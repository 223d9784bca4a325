#!/usr/bin/env python
"""POST /v1/payment_intents against the production server set-up, at several numbers of concurrent connections.

    .venv/bin/python bench/create_intents.py [--duration 10] [--connections 1,16,64,1000] [--no-record]

One command, from nothing: it drops and re-creates the `gateway_bench` database on 127.0.0.1:5432, migrates it,
initializes the wallet, creates a merchant and an `sk_test_` key, starts the production server
(`gunicorn -c gateway/gunicorn.conf.py gateway.wsgi` with gateway.settings.production, DEBUG off) on a free
127.0.0.1 port, warms it up, then runs wrk (bench/create_intents.lua) at each number of connections twice: without
an Idempotency-Key, and with a unique one per request as Stripe's SDKs send. Afterwards it checks in the database
that every 2xx answer is an intent (and no intent is missing its events, options or idempotency record) and that
every deposit address is distinct and derives from the account xpub at its index; prints a table; appends a dated
section to docs/benchmarks.md. The server is stopped at the end, whatever happens. Only 127.0.0.1 is ever targeted.

While wrk runs it samples CPU time from /proc: the server's processes, the PostgreSQL processes serving the bench
database (plus PostgreSQL's background writers), wrk itself, and the whole machine.
"""
import argparse
import base64
import datetime as dt
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

# One key for the application secrets per bench run: every process it starts must read the same data key.
SECRETS_KEK = os.environ.setdefault("BENCH_GATEWAY_SECRETS_KEK", base64.b64encode(secrets.token_bytes(32)).decode())

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"  # the only address this benchmark ever talks to
PG = {"host": HOST, "port": 5432, "user": "root"}
DB_NAME = os.environ.get("BENCH_DB_NAME", "gateway_bench")  # another name lets two benches run side by side
LUA = ROOT / "bench" / "create_intents.lua"
DOC = ROOT / "docs" / "benchmarks.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


# --- the database and the server ---------------------------------------------------------------------------------


def pg_connect(dbname: str):
    return psycopg.connect(dbname=dbname, autocommit=True, **PG)


def database_reset() -> None:
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def server_env(port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GUNICORN_", "DEBUG"))}
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        GATEWAY_KEK=base64.b64encode(secrets.token_bytes(32)).decode(),
        GATEWAY_SECRETS_KEK=SECRETS_KEK,
        DATABASE_URL=f"postgres://{PG['user']}@{HOST}:{PG['port']}/{DB_NAME}",
        GATEWAY_PUBLIC_URL=f"http://{HOST}:{port}",
        ALLOWED_HOSTS=HOST,
        LOG_LEVEL="WARNING",
        PYTHONDONTWRITEBYTECODE="1",
        # Plain HTTP on 127.0.0.1, no TLS proxy in front: no redirect to https.
        SECURE_SSL_REDIRECT="false",
        # One test key from one IP at thousands of requests/s: the per-key limit (25/s in test mode) raised out of the
        # way, not turned off, so that the figures include the limiter's Redis round trip.
        GATEWAY_RATE_LIMIT_TEST_READ=os.environ.get("GATEWAY_RATE_LIMIT_TEST_READ", "1000000/s"),
        GATEWAY_RATE_LIMIT_TEST_WRITE=os.environ.get("GATEWAY_RATE_LIMIT_TEST_WRITE", "1000000/s"),
    )
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "python"), str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# The production web server, as shipped: scripts/serve.sh (granian, WSGI; HTTP and keep-alive in Rust), one worker
# process per core, one application thread each. gunicorn with gateway/gunicorn.conf.py is the alternative
# (--server gunicorn); docs/benchmarks.md has both.
GRANIAN_WORKERS = len(os.sched_getaffinity(0))
SERVE = ROOT / "scripts" / "serve.sh"


def serve_command(*, env: dict, host: str, port: int, workers: int | None = None, threads: int | None = None,
                  ) -> list[str]:
    """scripts/serve.sh, configured through its environment (written into `env`)."""
    env.update(GATEWAY_WEB_HOST=host, GATEWAY_WEB_PORT=str(port), GRANIAN=str(BIN / "granian"))
    for name, value in (("GATEWAY_WEB_WORKERS", workers), ("GATEWAY_WEB_THREADS", threads)):
        if value:
            env[name] = str(value)
        else:
            env.pop(name, None)
    return ["bash", str(SERVE)]


def server_command(args, port: int, env: dict) -> tuple[list[str], str]:
    """The command line and a one-line description of the server set-up."""
    if args.server == "granian":
        workers = args.workers or GRANIAN_WORKERS
        threads = args.threads or 1
        cmd = serve_command(env=env, host=HOST, port=port, workers=args.workers, threads=args.threads)
        pool = env.get("DATABASE_POOL_MAX_SIZE")
        db = f"a psycopg pool of {pool} connections per worker" if pool else "one persistent connection per thread"
        return cmd, (f"`scripts/serve.sh` (granian, {workers} worker processes x {threads} application thread, "
                     f"HTTP/1.1 keep-alive, {db})")
    env["GUNICORN_BIND"] = f"{HOST}:{port}"
    if args.workers:
        env["GUNICORN_WORKERS"] = str(args.workers)
    if args.worker_class:
        env["GUNICORN_WORKER_CLASS"] = args.worker_class
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    env.pop("GUNICORN_ACCESS_LOG", None)
    cmd = [str(BIN / "gunicorn"), "-c", str(ROOT / "gateway" / "gunicorn.conf.py"), "gateway.wsgi"]
    printed = subprocess.run(cmd + ["--print-config"], env=env, cwd=ROOT, capture_output=True, text=True).stdout
    conf = dict(re.findall(r"^(\w+)\s*=\s*(.*)$", printed, re.M))
    desc = (
        f"`gunicorn -c gateway/gunicorn.conf.py gateway.wsgi`: {conf.get('worker_class', '?')} workers, "
        f"-w {conf.get('workers', '?')}"
        + (f" --threads {conf.get('threads')}" if conf.get("threads", "1") != "1" else "")
        + f", backlog {conf.get('backlog', '?')}, preload {conf.get('preload_app', '?')}, "
        f"access log {conf.get('accesslog', 'None')} (sync workers close the connection after each response)"
    )
    return cmd, desc


def server_start(cmd: list[str], env: dict, port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                pass
            status, _ = http(port, "GET", "/v1/payment_intents", key=None)
            if status == 401:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer within 60 s:\n{log_path.read_text()[-4000:]}")


def server_stop(proc: subprocess.Popen | None) -> None:
    """SIGTERM to the server we started (a graceful stop of its workers), SIGKILL to its process group if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group of the session started for it: only its own processes
        proc.wait(timeout=10)


def http(port: int, method: str, path: str, *, key: str | None, body: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method,
                                 data=body.encode() if body is not None else None)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


# --- CPU sampling from /proc ---------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime + stime in ticks) of a process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _descendants(root: int) -> dict[int, int]:
    """CPU ticks of `root` and every process below it."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat:
                table[int(entry)] = stat
    result, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in table:
            result[pid] = table[pid][1]
            frontier.extend(p for p, (ppid, _) in table.items() if ppid == pid)
    return result


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total


class CpuSampler:
    """CPU ticks used between start() and stop() by the server's processes, PostgreSQL's and the whole machine."""

    def __init__(self, server_pid: int, monitor):
        self.server_pid = server_pid
        self.monitor = monitor

    def _pg(self, backends: bool) -> dict[int, int]:
        """The bench database's backends, or PostgreSQL's background processes (WAL writer, checkpointer, ...)."""
        rows = self.monitor.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
            + ("datname = %s AND backend_type = 'client backend'" if backends else
               "backend_type <> 'client backend' AND (datname IS NULL OR datname = %s)"), [DB_NAME]
        ).fetchall()
        return {pid: stat[1] for (pid,) in rows if (stat := _proc_stat(pid))}

    def snapshot(self) -> dict:
        return {"server": _descendants(self.server_pid), "pg": self._pg(True), "pg_bg": self._pg(False),
                "machine": _machine_ticks(), "t": time.monotonic()}

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        def used(key):
            return sum(ticks - a[key].get(pid, 0) for pid, ticks in b[key].items()) / CLK_TCK

        busy = (b["machine"][0] - a["machine"][0]) / CLK_TCK
        total = (b["machine"][1] - a["machine"][1]) / CLK_TCK
        return {"server": used("server"), "pg": used("pg"), "pg_bg": used("pg_bg"), "busy": busy, "capacity": total,
                "wall": b["t"] - a["t"]}


# --- wrk ----------------------------------------------------------------------------------------------------------

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT[unit]


def parse_wrk(text: str) -> dict:
    def grab(pattern, default=None):
        match = re.search(pattern, text, re.M)
        return match.groups() if match else default

    requests, duration, dunit = grab(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)")
    socket_errors = grab(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", ("0",) * 4)
    latency = {p: _ms(*grab(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)")) for p in ("50", "75", "90", "99")}
    return {
        "requests": int(requests),
        "seconds": _ms(duration, dunit) / 1000,
        "rps": float(grab(r"Requests/sec:\s+([\d.]+)")[0]),
        "p50": latency["50"], "p90": latency["90"], "p99": latency["99"],
        "max": _ms(*grab(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)")),
        "non2xx": int(grab(r"Non-2xx or 3xx responses: (\d+)", ("0",))[0]),
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, socket_errors))),
        "sent": int(grab(r"^BENCH sent=(\d+)", ("0",))[0]),
    }


def run_wrk(*, port: int, key: str, connections: int, duration: int, idempotent: bool, tag: str, threads: int,
            timeout: int, sampler: CpuSampler | None) -> dict:
    cmd = [
        "wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{duration}s",
        "--timeout", f"{timeout}s", "--latency", "-s", str(LUA), f"http://{HOST}:{port}",
        "--", key, "1" if idempotent else "0", tag,
    ]
    before = sampler.snapshot() if sampler else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    after = sampler.snapshot() if sampler else None
    if proc.returncode != 0 or "requests in" not in out:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out}")
    result = parse_wrk(out)
    result["raw"] = out
    if sampler:
        result["cpu"] = CpuSampler.delta(before, after)
        result["cpu"]["wrk"] = usage.ru_utime + usage.ru_stime
    return result


# --- checks in the database ---------------------------------------------------------------------------------------


def wait_idle(db, timeout: float = 180, *, application_name: str | None = None) -> None:
    """Until the server has answered everything wrk left behind: when wrk stops, up to one request per connection is
    still queued in the server (not yet visible in PostgreSQL), and the next run must neither count nor wait for it.
    With `application_name`, only the connections of that name count as busy (the web server's, among others)."""
    deadline = time.monotonic() + timeout
    last, quiet = None, 0
    while time.monotonic() < deadline:
        busy, intents = db.execute(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND state <> 'idle' AND application_name = coalesce(%s, application_name)), "
            "(SELECT count(*) FROM payments_paymentintent)", [DB_NAME, application_name]
        ).fetchone()
        # three quiet seconds in a row: on a loaded machine a queued request can wait a second for the CPU
        quiet = quiet + 1 if not busy and intents == last else 0
        if quiet >= 3:
            return
        last = intents
        time.sleep(1.0)
    raise SystemExit(f"the server was still creating intents {timeout} s after wrk stopped")


def counts(db) -> dict:
    row = db.execute(
        "SELECT (SELECT count(*) FROM payments_paymentintent), "
        "(SELECT count(*) FROM payments_paymentintent WHERE idempotency_key <> ''), "
        "(SELECT count(*) FROM merchants_idempotencyrecord)"
    ).fetchone()
    return {"intents": row[0], "with_key": row[1], "records": row[2]}


def verify(db, env: dict) -> list[str]:
    """Whole-database invariants after the runs; returns the lines to report (raises on a failure)."""
    intents, addresses, distinct_addresses, distinct_indexes, no_address, events, bad_events, no_options = (
        db.execute("""
        SELECT (SELECT count(*) FROM payments_paymentintent),
               (SELECT count(*) FROM wallets_depositaddress),
               (SELECT count(DISTINCT address) FROM wallets_depositaddress),
               (SELECT count(DISTINCT index) FROM wallets_depositaddress),
               (SELECT count(*) FROM payments_paymentintent WHERE deposit_address_id IS NULL),
               (SELECT count(*) FROM payments_event),
               (SELECT count(*) FROM (
                    SELECT count(e.id) FILTER (WHERE e.type IN ('payment_intent.created',
                                                                'payment_intent.requires_action')) AS n
                    FROM payments_paymentintent pi LEFT JOIN payments_event e ON e.object_id = pi.id GROUP BY pi.id
               ) per_intent WHERE n <> 2),
               (SELECT count(*) FROM payments_paymentintent pi WHERE NOT EXISTS
                    (SELECT 1 FROM payments_paymentoption o WHERE o.payment_intent_id = pi.id))
        """).fetchone()
    )
    problems = []
    if not (intents == addresses == distinct_addresses == distinct_indexes):
        problems.append(f"{intents} intents, {addresses} addresses, {distinct_addresses} distinct addresses, "
                        f"{distinct_indexes} distinct indexes")
    if no_address or bad_events or no_options or events != 2 * intents:
        problems.append(f"{no_address} intents without address, {bad_events} without their 2 events, "
                        f"{no_options} without options, {events} events for {intents} intents")
    # Re-derive a sample of addresses from the account xpub, in a separate Python with the same settings.
    code = (
        "import json, random; from wallets.models import DepositAddress; from wallets import hd, selectors; "
        "xpub = selectors.account_xpub_get(); ids = list(DepositAddress.objects.values_list('id', flat=True)); "
        "rows = DepositAddress.objects.filter(id__in=random.sample(ids, min(200, len(ids)))); "
        "print(json.dumps([r.address == hd.address_at(xpub, r.index) for r in rows]))"
    )
    sample = json.loads(manage(env, "shell", "-c", code).strip().splitlines()[-1])
    if not all(sample):
        problems.append(f"{sample.count(False)} of {len(sample)} sampled addresses do not derive from the xpub")
    if problems:
        raise SystemExit("database check FAILED: " + "; ".join(problems))
    return [
        f"{intents} intents, {addresses} deposit addresses: all distinct (addresses and indexes), each intent with "
        f"its 2 events and its payment options; {len(sample)} sampled addresses re-derived from the account xpub "
        f"at their index.",
    ]


# --- the report ---------------------------------------------------------------------------------------------------


def machine() -> dict:
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    mem_kb = int(re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
    with pg_connect("postgres") as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', "
            "'max_connections', 'autovacuum')"
        ).fetchall())
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": pg_version.split()[0],
        "pg_settings": settings,
        "kernel": platform.release(),
        "wrk": (wrk.stdout + wrk.stderr).split("[")[0].replace("Copyright", "").strip() or "wrk",
    }


def fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def table(results: list[dict]) -> list[str]:
    lines = [
        "| connections | Idempotency-Key | creations/s | p50 ms | p90 ms | p99 ms | max ms | 2xx | non-2xx "
        "| socket errors | in flight at stop | CPU: server / PG backends / PG background / wrk / other / idle "
        "| CPU ms per creation: server / PG |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for r in results:
        cpu = r["cpu"]
        cap = cpu["capacity"] or 1
        other = max(cpu["busy"] - cpu["server"] - cpu["pg"] - cpu["pg_bg"] - cpu["wrk"], 0)
        idle = max(cap - cpu["busy"], 0)
        parts = (cpu["server"], cpu["pg"], cpu["pg_bg"], cpu["wrk"], other, idle)
        share = " / ".join(f"{100 * v / cap:.0f}%" for v in parts)
        errors = r["socket_errors"]
        err = ", ".join(f"{k} {v}" for k, v in errors.items() if v) or "0"
        lines.append(
            f"| {r['connections']:,} | {'unique' if r['idempotent'] else 'none'} | {r['rps']:,.0f} "
            f"| {fmt_ms(r['p50'])} "
            f"| {fmt_ms(r['p90'])} | {fmt_ms(r['p99'])} | {fmt_ms(r['max'])} | {r['ok']:,} | {r['non2xx']:,} | {err} "
            f"| {r['in_flight']} | {share} | {1000 * cpu['server'] / max(r['ok'], 1):.2f} / "
            f"{1000 * (cpu['pg'] + cpu['pg_bg']) / max(r['ok'], 1):.2f} |"
        )
    return lines


def report(*, args, info: dict, server_desc: str, results: list[dict], checks: list[str], started: dt.datetime,
           command: str) -> str:
    goal16 = [r for r in results if r["connections"] == 16]
    goal1000 = [r for r in results if r["connections"] == 1000]
    verdict = []
    for r in goal16:
        ok = r["rps"] >= 500 and r["p99"] <= 100
        verdict.append(f"16 connections, Idempotency-Key {'unique' if r['idempotent'] else 'none'}: "
                       f"{r['rps']:,.0f}/s, p99 {fmt_ms(r['p99'])} ms: goal (>= 500/s, p99 <= 100 ms) "
                       f"{'met' if ok else 'NOT met'}")
    for r in goal1000:
        errors = r["non2xx"] + sum(r["socket_errors"].values())
        verdict.append(f"1,000 connections, Idempotency-Key {'unique' if r['idempotent'] else 'none'}: "
                       f"{errors} errors, {r['rps']:,.0f}/s")
    pg = info["pg_settings"]
    lines = [
        f"## {started:%Y-%m-%d %H:%M} UTC{' - ' + args.label if args.label else ''}",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram_gib']} GiB RAM, Linux {info['kernel']}, "
        f"Python {info['python']}, PostgreSQL {info['postgresql']} (shared_buffers {pg.get('shared_buffers')} x 8 kB, "
        f"synchronous_commit {pg.get('synchronous_commit')}, fsync {pg.get('fsync')}, autovacuum "
        f"{pg.get('autovacuum')}: the bench runs ANALYZE before each run), {info['wrk']} on the same machine.",
        "",
        f"Server: {server_desc}; gateway.settings.production (DEBUG off). wrk: {args.threads} threads (at most one "
        f"per connection), {args.duration} s per run, --timeout {args.timeout} s, after a {args.warmup} s warm-up. "
        "Body `amount=1234&currency=usd&metadata[order_id]=<unique>`, `Authorization: Bearer sk_test_...`: a "
        "test-mode intent with the default networks (6 test networks, 7 payment options, 2 events).",
        "",
        *table(results),
        "",
        "CPU columns: share of the machine's capacity (all cores x run time) used by the server's processes, the "
        "PostgreSQL backends of the bench database, PostgreSQL's background processes (WAL writer, checkpointer, "
        "autovacuum), wrk, everything else (kernel, other processes: a high share means the run was disturbed), and "
        "idle. 'In flight at stop': requests wrk had sent when its time was up and never waited for; the server "
        "still completes them.",
        "",
        "Checks: " + " ".join(checks),
        "",
        *[f"- {v}" for v in verdict],
        "",
    ]
    return "\n".join(lines)


def append_doc(section: str) -> None:
    DOC.parent.mkdir(exist_ok=True)
    if not DOC.exists():
        DOC.write_text(
            "# Benchmarks\n\nFigures printed by the benchmarks of `bench/` (see bench/README.md), newest last. Each "
            "section is appended by the benchmark itself; the notes between sections are written by hand.\n\n"
        )
    with DOC.open("a") as fh:
        fh.write("\n" + section)


# --- main ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", default="1,16,64,1000", help="comma-separated levels (1,16,64,1000)")
    parser.add_argument("--modes", default="none,unique", help="Idempotency-Key modes to run: none,unique")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2; never more than connections)")
    parser.add_argument("--timeout", type=int, default=30, help="wrk's per-request timeout in seconds (30)")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up at 16 connections (5)")
    parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian",
                        help="granian (the production set-up, default) or gunicorn -c gateway/gunicorn.conf.py")
    parser.add_argument("--workers", type=int, help="override the worker count of the server config")
    parser.add_argument("--worker-class", help="gunicorn worker class override (sync, gthread)")
    parser.add_argument("--server-threads", dest="threads_server", type=int,
                        help="threads per worker (gunicorn gthread, granian blocking threads)")
    parser.add_argument("--label", default="", help="a few words for the heading of the docs section")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    args.threads_server = args.threads_server or None
    levels = [int(c) for c in args.connections.split(",") if c.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in ("none", "unique") for m in modes):
        parser.error("--modes takes none and/or unique")

    # 1,000 connections need more than 1,024 open files, in wrk and in the server (both inherit this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(max(levels) * 2 + 256, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))

    if shutil.which("wrk") is None:
        sys.exit("create_intents: wrk is not installed: `bash scripts/setup.sh --bench` installs it (as root), "
                 "or `sudo apt-get install -y wrk`")
    started = dt.datetime.now(dt.timezone.utc)
    command = shlex.join([".venv/bin/python", "bench/create_intents.py", *sys.argv[1:]])
    info = machine()
    port = free_port()
    env = server_env(port)
    say(f"database {DB_NAME}: drop, create, migrate")
    database_reset()
    manage(env, "migrate", "--no-input")
    manage(env, "wallet", "init", "--json")
    email = f"bench-{secrets.token_hex(4)}@example.com"
    manage(env, "create_merchant", "--email", email, "--json")
    key = json.loads(manage(env, "create_api_key", "--merchant", email, "--mode", "test", "--json"))["secret_key"]

    server_args = argparse.Namespace(server=args.server, workers=args.workers, worker_class=args.worker_class,
                                     threads=args.threads_server)
    cmd, server_desc = server_command(server_args, port, env)
    logdir = Path(tempfile.mkdtemp(prefix="bench-"))
    proc = None
    results = []
    try:
        say(f"starting: {server_desc} on {HOST}:{port} (log {logdir / 'server.log'})")
        proc = server_start(cmd, env, port, logdir / "server.log")
        status, body = http(port, "POST", "/v1/payment_intents", key=key,
                            body="amount=1234&currency=usd&metadata%5Border_id%5D=first")
        if status != 200 or body.get("status") != "requires_action" or not body.get("next_action"):
            raise SystemExit(f"the first creation failed: {status} {json.dumps(body)[:2000]}")
        with pg_connect(DB_NAME) as db:
            sampler = CpuSampler(proc.pid, db)
            if args.warmup:
                say(f"warm-up: {args.warmup} s at 16 connections")
                run_wrk(port=port, key=key, connections=16, duration=args.warmup, idempotent=True, tag="warmup",
                        threads=args.threads, timeout=args.timeout, sampler=None)
                wait_idle(db)
            for connections in levels:
                for mode in modes:
                    idempotent = mode == "unique"
                    tag = f"c{connections}{'i' if idempotent else 'n'}{secrets.token_hex(3)}"
                    # What autovacuum does for a production database (it is off on some development machines):
                    # without statistics, plans cached on the first requests can scan a growing table.
                    db.execute("ANALYZE")
                    before = counts(db)
                    say(f"{connections} connections, Idempotency-Key {mode}: {args.duration} s")
                    r = run_wrk(port=port, key=key, connections=connections, duration=args.duration,
                                idempotent=idempotent, tag=tag, threads=args.threads, timeout=args.timeout,
                                sampler=sampler)
                    wait_idle(db)
                    after = counts(db)
                    r.update(connections=connections, idempotent=idempotent)
                    r["ok"] = r["requests"] - r["non2xx"]
                    r["in_flight"] = r["sent"] - r["requests"]
                    created = after["intents"] - before["intents"]
                    # Every 2xx is an intent; the only extra intents are requests still in flight when wrk stopped.
                    if not r["ok"] <= created <= r["ok"] + r["in_flight"]:
                        raise SystemExit(f"{created} intents in the database for {r['ok']} 2xx answers "
                                         f"({r['in_flight']} in flight at stop):\n{r['raw']}")
                    keyed = after["with_key"] - before["with_key"]
                    records = after["records"] - before["records"]
                    if keyed != (created if idempotent else 0) or records != keyed:
                        raise SystemExit(f"{created} intents, {keyed} with an Idempotency-Key, {records} records")
                    r["created"] = created
                    results.append(r)
                    say(f"  {r['rps']:,.0f}/s  p50 {fmt_ms(r['p50'])} ms  p99 {fmt_ms(r['p99'])} ms  "
                        f"non-2xx {r['non2xx']}  socket errors {sum(r['socket_errors'].values())}  "
                        f"({created} intents in the database for {r['ok']} 2xx, {r['in_flight']} in flight at stop)")
            checks = verify(db, env)
    finally:
        server_stop(proc)
    section = report(args=args, info=info, server_desc=server_desc, results=results, checks=checks,
                     started=started, command=command)
    print(section)
    if not args.no_record:
        append_doc(section)
        say(f"appended to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
