"""`Idempotency-Key` (merchants.idempotency) under real concurrency and a real crash.

- 20 clients send the same create with one key at the same moment, over HTTP to the live server (a thread per
  request, each its own PostgreSQL connection): exactly one intent is created; every other client gets either the
  replay of that response or the immediate 409 `idempotency_key_in_use` of a concurrent duplicate
  (docs/architecture.md), never a second intent nor a 500.
- A server process (gunicorn, as deployed) is killed with SIGKILL while a create with a key is in flight, held at
  its INSERT by a table lock the test takes in PostgreSQL. While the dead request's transaction still waits, a
  retry on a restarted server gets 409; once the lock goes, that transaction rolls back (its client is gone) and the
  retry creates the intent, exactly once, and replays it afterwards."""
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection

from merchants.models import IdempotencyRecord
from payments.models import PaymentIntent
from tests.chain import free_port
from tests.processes import Processes, process_env, wait_until
from wallets.models import DepositAddress

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("networks", "wallet")]

BODY = b"amount=4200&currency=usd&metadata[order_id]=A-42"


def post(base_url: str, secret_key: str, key: str, *, timeout: float = 60) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"{base_url}/v1/payment_intents", data=BODY, method="POST",
        headers={"Authorization": f"Bearer {secret_key}", "Idempotency-Key": key,
                 "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_one_key_from_20_concurrent_clients_creates_one_intent(live_server, secret_key, merchant):
    barrier = threading.Barrier(20)

    def client(_):
        barrier.wait()
        return post(live_server.url, secret_key, "order-A-42")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(client, range(20)))

    statuses = sorted(status for status, _, _ in results)
    assert set(statuses) <= {200, 409}, statuses
    created = [body for status, headers, body in results if status == 200 and "Idempotent-Replayed" not in headers]
    replayed = [body for status, headers, body in results if status == 200 and "Idempotent-Replayed" in headers]
    conflicts = [body for status, _, body in results if status == 409]
    assert len(created) == 1
    assert all(body == created[0] for body in replayed)
    assert all(body["error"]["code"] == "idempotency_key_in_use" for body in conflicts)
    assert PaymentIntent.objects.filter(merchant=merchant).count() == 1
    assert PaymentIntent.objects.get().id == created[0]["id"]
    assert IdempotencyRecord.objects.count() == 1
    print(f"\n20 clients, one key: 1 created, {len(replayed)} replayed, {len(conflicts)} got 409")


def start_server(processes: Processes, port: int):
    env = process_env(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="1")
    server, log = processes.start([sys.executable, "-m", "gunicorn", "-c", "gateway/gunicorn.conf.py", "gateway.wsgi"], env=env,
                                  name="gunicorn")
    processes.wait_for_line(server, log, "Booting worker")

    def answers():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/payment_intents", timeout=5)
        except urllib.error.HTTPError:
            return True  # 401: the application answers
        except OSError:
            return False
        return True

    wait_until(answers, timeout=60, what="the server to answer", interval=0.1)
    return server


def waiting_on_lock(dbname: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                       [dbname])
        return cursor.fetchone()[0]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_create_killed_mid_request_and_retried_with_its_key_creates_one_intent(tmp_path, secret_key, merchant):
    processes = Processes(tmp_path)
    db = connection.settings_dict
    holder = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                             password=db["PASSWORD"] or None, dbname=db["NAME"])
    try:
        port = free_port()
        server = start_server(processes, port)
        base = f"http://127.0.0.1:{port}"
        # Given a create with a key that is held at its INSERT (the test holds a lock that blocks writes to intents)
        holder.execute("LOCK TABLE payments_paymentintent IN SHARE MODE")
        pool = ThreadPoolExecutor(max_workers=1)
        in_flight = pool.submit(post, base, secret_key, "order-B-7", timeout=120)
        wait_until(lambda: waiting_on_lock(db["NAME"]), timeout=60, what="the create to wait at its INSERT")

        # When the server is killed -9 mid-request, and restarted
        processes_group_kill(server)
        with pytest.raises(OSError):
            in_flight.result(timeout=60)  # the client saw the connection drop
        pool.shutdown()
        server = start_server(processes, port)

        # Then a retry while the dead request's transaction still waits is refused at once (its lock is held) ...
        status, _, body = post(base, secret_key, "order-B-7")
        assert (status, body["error"]["code"]) == (409, "idempotency_key_in_use")
        assert not PaymentIntent.objects.exists() and not IdempotencyRecord.objects.exists()

        # ... and once the lock goes, the dead request's transaction rolls back and a retry creates the intent
        holder.rollback()
        wait_until(lambda: post(base, secret_key, "order-B-7")[0] != 409, timeout=60,
                   what="the dead request's transaction to end", interval=0.2)
        intent = PaymentIntent.objects.get(merchant=merchant)
        assert intent.amount == 4200 and intent.metadata == {"order_id": "A-42"}
        assert IdempotencyRecord.objects.get().response_body["id"] == intent.id
        assert DepositAddress.objects.count() == 1  # the dead request's address rolled back with it
        status, headers, body = post(base, secret_key, "order-B-7")
        assert status == 200 and headers.get("Idempotent-Replayed") == "true" and body["id"] == intent.id
        assert PaymentIntent.objects.count() == 1
        Processes.stop(server)
    finally:
        holder.close()
        processes.stop_all()


def processes_group_kill(process) -> None:
    """SIGKILL to the server and its workers (its own session: start_new_session)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
