"""/readyz of a served gateway (gunicorn, a process of its own) whose PostgreSQL, Redis and RPC node go away and
come back: each reaches the gateway through a TCP relay the test stops and starts again (tests/tcpproxy.py). The
probe must turn unhealthy within 10 s of each loss and healthy again within 10 s of the return."""
import json
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tests.chain import free_port
from tests.payments.conftest import settle
from tests.processes import Processes, process_env, wait_until
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.timeout(240)


def readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


@pytest.fixture
def processes(tmp_path):
    running = Processes(tmp_path)
    yield running
    running.stop_all()


def test_readyz_follows_postgresql_redis_and_the_rpc_node_going_away_and_back(devnet, anvil_chain, processes):
    settle(devnet, anvil_chain)
    db = connection.settings_dict
    redis_url = urlsplit(settings.CACHES["default"]["LOCATION"])
    with TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)) as pg, \
            TcpProxy(redis_url.hostname, redis_url.port or 6379) as redis_proxy, \
            TcpProxy("127.0.0.1", anvil_chain.port) as node:
        # Given the gateway served with its database, Redis and RPC node each behind a relay
        port = free_port()
        redis_via_proxy = f"redis://127.0.0.1:{redis_proxy.port}{redis_url.path}"
        env = process_env(
            DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@127.0.0.1:{pg.port}/{db['NAME']}"
            if db.get("PASSWORD") else f"postgres://{db['USER']}@127.0.0.1:{pg.port}/{db['NAME']}",
            REDIS_URL=redis_via_proxy, CELERY_BROKER_URL=redis_via_proxy,
            GATEWAY_DEVCHAIN_RPC_URL=f"http://127.0.0.1:{node.port}",
        )
        server, log = processes.start(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
             "gateway.wsgi:application"], env=env, name="gunicorn")
        wait_until(lambda: readyz(port)[0] == 200, timeout=90, what=f"a ready gateway:\n{log}", interval=0.2)

        for relay, check in ((pg, "database"), (redis_proxy, "redis"), (node, "chains")):
            # When the dependency goes away
            relay.stop()
            # then the gateway says it is not ready within 10 s, naming the check
            status, body = wait_until(lambda: (r := readyz(port))[0] == 503 and r, timeout=10,
                                      what=f"/readyz to fail without {check}", interval=0.2)
            failed = body["checks"][check]
            assert (failed["devnet"]["ok"] if check == "chains" else failed["ok"]) is False, body
            # and when it comes back, ready again within 10 s
            relay.start()
            wait_until(lambda: readyz(port)[0] == 200, timeout=10, what=f"/readyz to recover with {check}",
                       interval=0.2)
        assert server.poll() is None


def test_other_processes_counters_reach_metrics_through_the_multiprocess_directory(devnet, anvil_chain, processes,
                                                                                     tmp_path):
    settle(devnet, anvil_chain)
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = process_env(PROMETHEUS_MULTIPROC_DIR=str(multiproc), GATEWAY_DEVCHAIN_RPC_URL=anvil_chain.rpc_url)
    # Given a scan run by a process of its own (as a Celery worker or `watch` would), writing to the directory
    cursor = devnet.cursor.block_number
    scan, log = processes.manage("scan", "--chain", "devnet", "--from-block", str(max(0, cursor - 3)),
                                 "--to-block", str(cursor), env=env)
    assert scan.wait(timeout=120) == 0, log.read_text()
    # when the machine's metrics are served from that directory (by `metrics_serve`, and by the web tier)
    port = free_port()
    server, server_log = processes.manage("metrics_serve", "--port", str(port), env=env)
    processes.wait_for_line(server, server_log, "metrics of")

    def scraped():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return response.read().decode()
        except OSError:
            return None
    body = wait_until(scraped, timeout=30, what="metrics_serve to answer", interval=0.2)
    # then the scan's RPC calls are there, counted by the process that made them
    samples = [s for f in text_string_to_metric_families(body) for s in f.samples
               if s.name == "gateway_rpc_calls_total" and s.labels.get("network") == "devnet"]
    assert samples and sum(s.value for s in samples) > 0
