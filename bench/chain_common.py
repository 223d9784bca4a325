"""What the chain watcher's benchmarks (chain_ingest.py, chain_latency.py) share: a database of their own, the
Django environment pointed at it, anvil, the machine's description and the docs section.

The scripts import this module BEFORE Django: `bench_env()` fills os.environ, then `django_setup()` loads the
production settings against the bench database. Only 127.0.0.1 is ever talked to.
"""
import base64
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PG = {"host": HOST, "port": 5432, "user": "root"}
DOC = ROOT / "docs" / "benchmarks.md"
# A Redis database of the benchmarks' own: the scanner's after-commit task message goes there (and the latency
# benchmark's Celery worker reads it); emptied at the start and the end of a run.
REDIS_URL = "redis://127.0.0.1:6379/9"
CLK_TCK = os.sysconf("SC_CLK_TCK")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def say(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def pg_connect(dbname: str):
    return psycopg.connect(dbname=dbname, autocommit=True, **PG)


def database_reset(db_name: str) -> None:
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')


def bench_env(db_name: str, rpc_url: str | None = None) -> dict:
    """The environment of the bench process and of every process it starts: production settings, random secrets,
    the bench database, the bench Redis database, the devnet's RPC URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG", "GATEWAY_RPC_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings.production",
        SECRET_KEY=os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        GATEWAY_KEK=os.environ.get("BENCH_GATEWAY_KEK") or base64.b64encode(secrets.token_bytes(32)).decode(),
        GATEWAY_SECRETS_KEK=os.environ.get("BENCH_GATEWAY_SECRETS_KEK")
        or base64.b64encode(secrets.token_bytes(32)).decode(),
        DATABASE_URL=f"postgres://{PG['user']}@{HOST}:{PG['port']}/{db_name}",
        GATEWAY_PUBLIC_URL=f"http://{HOST}:8000",
        ALLOWED_HOSTS=HOST,
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        LOG_LEVEL="WARNING",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env["BENCH_SECRET_KEY"], env["BENCH_GATEWAY_KEK"] = env["SECRET_KEY"], env["GATEWAY_KEK"]
    env["BENCH_GATEWAY_SECRETS_KEK"] = env["GATEWAY_SECRETS_KEK"]
    if rpc_url:
        env["GATEWAY_RPC_DEVNET"] = rpc_url
        env["GATEWAY_DEVCHAIN_RPC_URL"] = rpc_url
    return env


def django_setup(env: dict) -> None:
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()


def redis_flush() -> None:
    """Empty the benchmarks' own Redis database (9): task messages nobody will consume."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def start_anvil(block_time: float | None = None):
    """(process, rpc_url) of a fresh anvil on a free 127.0.0.1 port, with the test tokens deployed."""
    from wallets import devchain

    for attempt in range(3):
        port = free_port()
        try:
            process = devchain.start_anvil(port, block_time)
            break
        except devchain.DevchainError:
            if attempt == 2:
                raise
    return process, devchain.local_rpc_url(port)


# --- CPU and memory from /proc -------------------------------------------------------------------------------------


def proc_ticks(pid: int) -> int:
    """utime + stime of `pid` and every process below it, in clock ticks."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    total, frontier = 0, [pid]
    while frontier:
        p = frontier.pop()
        if p in table:
            total += table[p][1]
            frontier.extend(c for c, (ppid, _) in table.items() if ppid == p)
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict:
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    mem_kb = int(re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
    with pg_connect("postgres") as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync')"
        ).fetchall())
    anvil = subprocess.run([str(ROOT / "node_modules" / ".bin" / "anvil"), "--version"], capture_output=True,
                           text=True)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": pg_version.split()[0],
        "pg_settings": settings,
        "kernel": platform.release(),
        "anvil": (anvil.stdout.strip().splitlines() or ["anvil"])[0],
    }


def machine_line(info: dict) -> str:
    pg = info["pg_settings"]
    return (f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram_gib']} GiB RAM, Linux {info['kernel']}, "
            f"Python {info['python']}, PostgreSQL {info['postgresql']} (shared_buffers {pg.get('shared_buffers')} x "
            f"8 kB, synchronous_commit {pg.get('synchronous_commit')}, fsync {pg.get('fsync')}), {info['anvil']}, "
            "all on the same machine.")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def append_doc(section: str) -> None:
    with DOC.open("a") as fh:
        fh.write("\n" + section)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
