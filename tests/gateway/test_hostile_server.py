"""Hostile bodies against a real server process, started as production starts it (granian, README): a body of
30,000 nested `[` used to overflow the C stack and kill the worker for good (py_ecc raises the recursion limit to
100,000); a body of any size used to be read whole. Both are refused, and the server still answers afterwards."""
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from merchants import services as merchant_services
from tests.merchants.factories import MerchantFactory

REPO = Path(__file__).resolve().parents[2]
GRANIAN = Path(sys.executable).with_name("granian")


@pytest.fixture(scope="module")
def server(django_db_setup, free_tcp_port_factory, tmp_path_factory):
    """One granian worker on the test database, for the module (each test commits its own key); its port and its
    process."""
    free_tcp_port, tmp_path = free_tcp_port_factory(), tmp_path_factory.mktemp("granian")
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings.test", "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": "memory://",
    }
    log = (tmp_path / "granian.log").open("wb")
    process = subprocess.Popen(
        [str(GRANIAN), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(free_tcp_port), "--workers", "1",
         "--blocking-threads", "1", "--no-access-log", "--log-level", "warning", "gateway.wsgi:application"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "granian.log").read_text()
            try:
                status, _ = request(free_tcp_port, "GET", "/v1/payment_intents")
                if status == 401:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "granian did not start"
            time.sleep(0.2)
        yield free_tcp_port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def key(transactional_db):
    return merchant_services.api_key_create(merchant=MerchantFactory()).raw


def request(port: int, method: str, path: str, *, body=None, headers=None, chunked: bool = False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def still_answers(port: int, process, key: str) -> None:
    assert process.poll() is None, "the server process exited"
    status, body = request(port, "GET", "/v1/payment_intents", headers={"Authorization": f"Bearer {key}"})
    assert status == 200, body[:300]


@pytest.mark.parametrize("depth", [33, 30_000, 100_000])
@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_a_deeply_nested_json_body_is_refused_and_the_server_lives(server, key, depth, opening):
    port, process = server
    body = (opening * depth + "1" + ("]" if opening == "[" else "}") * depth).encode()

    status, answer = request(port, "POST", "/v1/payment_intents", body=body,
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})

    assert status == 400, answer[:300]
    assert b"nested too deeply" in answer
    still_answers(port, process, key)


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/json"])
def test_a_body_over_the_limit_is_refused_and_the_server_lives(server, key, content_type):
    port, process = server
    limit = settings.GATEWAY_API_MAX_BODY_BYTES
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}

    status, answer = request(port, "POST", "/v1/payment_intents", body=b"a=" + b"x" * (2 * limit), headers=headers)

    assert status == 413, answer[:300]
    assert str(limit).encode() in answer and b"invalid_request_error" in answer
    still_answers(port, process, key)


def test_a_chunked_body_over_the_limit_is_never_taken_and_the_server_lives(server, key):
    port, process = server
    limit = settings.GATEWAY_API_MAX_BODY_BYTES
    chunks = (b"description=" if i == 0 else b"x" * 65536 for i in range(2 * limit // 65536 + 2))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-www-form-urlencoded"}

    status, answer = request(port, "POST", "/v1/payment_intents", body=chunks, headers=headers, chunked=True)

    assert 400 <= status < 500, answer[:300]
    still_answers(port, process, key)
