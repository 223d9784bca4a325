"""The production server set-up as shipped (scripts/serve.sh: granian, production settings) against the test database:
its PostgreSQL connections stay within workers x threads under a burst, and a killed worker is replaced.

The server runs as a process of its own on a free 127.0.0.1 port; its connections carry an application_name of
their own so that they can be counted in pg_stat_activity. Waits poll with generous limits; nothing is timed."""
import base64
import concurrent.futures
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "gateway-serve-test"
WORKERS, THREADS = 2, 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, key: str | None, *, timeout: float = 60) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/payment_intents?limit=3")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for(condition, *, seconds: float, message) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message() if callable(message) else message
        time.sleep(0.1)


def answers(port: int) -> bool:
    try:
        return get(port, None, timeout=5) == 401
    except OSError:
        return False


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.add(int(entry))
    return found


def server_connections() -> int:
    with connection.cursor() as cursor:
        # this database only: another checkout's suite on the same server may run this test at the same time
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                       "AND datname = current_database()", [APP_NAME])
        return cursor.fetchone()[0]


@pytest.fixture
def server(tmp_path, request):
    """scripts/serve.sh with gateway.settings.production on the test database: (port, process, log). Indirect
    parameters: more environment (e.g. a connection pool)."""
    db = connection.settings_dict
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GATEWAY_", "DATABASE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings.production", SECRET_KEY=secrets.token_urlsafe(50),
        GATEWAY_KEK=base64.b64encode(secrets.token_bytes(32)).decode(),
        GATEWAY_SECRETS_KEK=base64.b64encode(secrets.token_bytes(32)).decode(),
        DATABASE_URL=f"postgres://{db['USER'] or 'root'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
                     f"{db['NAME']}?application_name={APP_NAME}",
        GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port}", ALLOWED_HOSTS="127.0.0.1", LOG_LEVEL="WARNING",
        GATEWAY_WEB_PORT=str(port), GATEWAY_WEB_WORKERS=str(WORKERS), GATEWAY_WEB_THREADS=str(THREADS),
        SECURE_SSL_REDIRECT="false",  # plain HTTP on 127.0.0.1, no TLS proxy in front
        GATEWAY_RATE_LIMIT_TEST_READ="off", GATEWAY_RATE_LIMIT_TEST_WRITE="off",  # a burst from one key on purpose
    )
    env.update(getattr(request, "param", {}))
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "serve.sh")], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is None and answers(port), seconds=120,
                 message=lambda: f"the server did not answer:\n{log_path.read_text()[-3000:]}")
        yield port, proc, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            # granian waits up to --workers-kill-timeout (30 s) for a worker that holds a keep-alive connection;
            # nothing here tests the graceful stop, so the group is killed after a short wait
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session started for it: its own processes only
            proc.wait(timeout=10)


@pytest.mark.parametrize("server, bound", [
    ({}, WORKERS * THREADS),
    # Django's psycopg pool, smaller than the threads: they wait for a connection, never open one more
    ({"DATABASE_POOL_MAX_SIZE": "1"}, WORKERS * 1),
], indirect=["server"], ids=["a connection per thread", "a pool of 1 per worker"])
def test_a_burst_of_200_concurrent_requests_holds_the_connections_within_the_bound(server, bound, secret_key):
    port, _, _ = server
    # Given the server up, and a sampler of its PostgreSQL connections
    samples, done = [], threading.Event()

    def sample():
        try:
            while not done.is_set():
                samples.append(server_connections())
                time.sleep(0.05)
        finally:
            connection.close()  # this thread's own connection

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # when 200 clients send their requests at once
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
            statuses = list(pool.map(lambda _: get(port, secret_key, timeout=120), range(200)))
    finally:
        done.set()
        sampler.join(10)
    # then every one was answered, and the server never held more connections than its bound, nor after
    assert statuses == [200] * 200
    assert 0 < max(samples) <= bound, samples
    assert server_connections() <= bound


def test_a_worker_killed_is_replaced_and_the_server_answers(server, secret_key):
    port, proc, log_path = server
    # Given the server's worker processes
    workers = children(proc.pid)
    assert len(workers) == WORKERS, workers
    # when one of them is killed
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    # then a new worker takes its place and the server answers again, with the database
    wait_for(lambda: len(children(proc.pid) - {victim}) == WORKERS, seconds=120,
             message=lambda: f"no new worker: {children(proc.pid)}\n{log_path.read_text()[-3000:]}")
    assert victim not in children(proc.pid)
    statuses = [get(port, secret_key) for _ in range(2 * WORKERS)]
    assert statuses == [200] * (2 * WORKERS)
    assert proc.poll() is None
