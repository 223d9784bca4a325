"""The readiness probe (`/readyz`): can this gateway do its work right now?

Checks, run in parallel threads and bounded as a whole by GATEWAY_READYZ_TIMEOUT_SECONDS (a check that has not
answered by then fails as `timeout`, whatever it waits on: a hung PostgreSQL, a Redis that stopped reading, an RPC
node that accepts connections and never answers):

- `database`: a connection of its own (never the request's, which a hung server would keep) and `SELECT 1`; on the
  same connection, the two reads below, each under a statement timeout.
- `redis`: PING to each Redis the gateway uses (cache, broker, rate limits), counted once per server.
- `chains`: each active network with an RPC URL: eth_chainId + eth_blockNumber in one batch (one attempt per
  endpoint, no retry; an endpoint on another chain fails), and the scanner's lag: that live head minus the cursor,
  in seconds of the network's block time, within GATEWAY_READYZ_MAX_SCANNER_LAG_SECONDS (a cursor that never moved
  fails too). A network with no RPC URL is listed as not configured and not checked (the scanner skips it as well).
- `webhook_backlog`: deliveries due now plus events not fanned out yet, within GATEWAY_READYZ_MAX_WEBHOOK_BACKLOG
  (counted up to that bound + 1 only: the probe stays cheap whatever the backlog).

The answer names no URL, host, user or error text: a check says ok or one word of why not."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import psycopg
import redis
from django.conf import settings
from django.db import connection

from payments.models import Event, WebhookDelivery
from wallets.chain.rpc import RpcClient, RpcError, RpcUnavailable, mask_url, rpc_urls
from wallets.models import ChainCursor, Network


@dataclass
class Check:
    ok: bool
    reason: str = ""  # one word when not ok: unreachable, timeout, wrong_chain, lagging, not_scanned, over_bound
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"ok": self.ok, **({"reason": self.reason} if self.reason else {}), **self.details}


@dataclass
class DatabaseReads:
    check: Check
    networks: list[dict] = field(default_factory=list)  # active networks with their cursor
    backlog: int | None = None


def _database_params() -> dict:
    db = connection.settings_dict
    params = {"dbname": db["NAME"], "user": db["USER"] or None, "password": db["PASSWORD"] or None,
              "host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432}
    return {k: v for k, v in params.items() if v is not None}


def _database_reads(params: dict, timeout: float) -> DatabaseReads:
    bound = settings.GATEWAY_READYZ_MAX_WEBHOOK_BACKLOG
    statement_ms = max(100, int(timeout * 1000))
    try:
        with psycopg.connect(**params, autocommit=True,
                             connect_timeout=max(2, int(timeout + 0.999)), application_name="gateway-readyz",
                             options=f"-c statement_timeout={statement_ms}") as conn:
            conn.execute("SELECT 1")
            networks = [
                {"id": row[0], "code": row[1], "chain_id": row[2], "rpc_env": row[3], "block_time_ms": row[4],
                 "cursor": row[5]}
                for row in conn.execute(
                    f"SELECT n.id, n.code, n.chain_id, n.rpc_env, n.block_time_ms, c.block_number "
                    f"FROM {Network._meta.db_table} n LEFT JOIN {ChainCursor._meta.db_table} c "
                    f"ON c.network_id = n.id WHERE n.is_active ORDER BY n.livemode, n.code")
            ]
            backlog = conn.execute(
                f"SELECT (SELECT count(*) FROM (SELECT 1 FROM {WebhookDelivery._meta.db_table} "
                f"WHERE status = 'pending' AND next_attempt_at <= now() LIMIT %(n)s) d) + "
                f"(SELECT count(*) FROM (SELECT 1 FROM {Event._meta.db_table} WHERE fanned_out_at IS NULL "
                f"LIMIT %(n)s) e)", {"n": bound + 1},
            ).fetchone()[0]
    except psycopg.Error:
        return DatabaseReads(check=Check(ok=False, reason="unreachable"))
    return DatabaseReads(check=Check(ok=True), networks=networks, backlog=backlog)


def _redis_urls() -> list[str]:
    urls = [settings.CACHES["default"]["LOCATION"], settings.CELERY_BROKER_URL,
            getattr(settings, "GATEWAY_RATE_LIMIT_REDIS_URL", "")]
    servers = {}
    for url in urls:
        if url and url.startswith(("redis://", "rediss://", "unix://")):
            pool = redis.ConnectionPool.from_url(url)
            kwargs = pool.connection_kwargs
            servers.setdefault((kwargs.get("host"), kwargs.get("port"), kwargs.get("path")), url)
    return list(servers.values())


def _redis_ping(url: str, timeout: float) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _chain_head(network: dict, urls: list[str], timeout: float) -> tuple[str, int | None]:
    """("", head) or (reason, None): one batch of eth_chainId + eth_blockNumber, one attempt per endpoint."""
    client = RpcClient(urls, name=network["code"], timeout=timeout, max_attempts=len(urls), retry_budget=0.0,
                       guard_head=False, pool_size=1)
    try:
        chain_id, head = client.batch([("eth_chainId", []), ("eth_blockNumber", [])])
    except (RpcUnavailable, RpcError):
        return "unreachable", None
    finally:
        client.close()
    if int(chain_id, 16) != network["chain_id"]:
        return "wrong_chain", None
    return "", int(head, 16)


def _chain_check(network: dict, urls: list[str], timeout: float) -> Check:
    reason, head = _chain_head(network, urls, timeout)
    if reason:
        return Check(ok=False, reason=reason)
    cursor = network["cursor"]
    if cursor is None or cursor < 0:
        return Check(ok=False, reason="not_scanned", details={"head": head})
    lag = max(0, head - cursor)
    lag_seconds = lag * network["block_time_ms"] / 1000
    details = {"head": head, "cursor": cursor, "lag_blocks": lag, "lag_seconds": round(lag_seconds, 1)}
    if lag_seconds > settings.GATEWAY_READYZ_MAX_SCANNER_LAG_SECONDS:
        return Check(ok=False, reason="lagging", details=details)
    return Check(ok=True, details=details)


def readiness() -> tuple[bool, dict]:
    """(ready, the JSON answer). Never raises, never takes much longer than GATEWAY_READYZ_TIMEOUT_SECONDS."""
    timeout = settings.GATEWAY_READYZ_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    per_call = max(0.2, timeout * 0.8)  # each dependency's own timeout, inside the whole probe's
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readyz")
    try:
        database = executor.submit(_database_reads, _database_params(), per_call)
        redis_urls = _redis_urls()
        pings = [executor.submit(_redis_ping, url, per_call) for url in redis_urls]
        checks: dict = {}

        wait([database], timeout=max(0.0, deadline - time.monotonic()))
        reads = database.result() if database.done() else DatabaseReads(check=Check(ok=False, reason="timeout"))
        checks["database"] = reads.check

        chains: dict[str, object] = {}
        for network in reads.networks:
            urls = rpc_urls(code=network["code"], rpc_env=network["rpc_env"])
            chains[network["code"]] = executor.submit(_chain_check, network, urls, per_call) if urls \
                else Check(ok=True, details={"configured": False})
        futures = [f for f in chains.values() if not isinstance(f, Check)]
        wait([*pings, *futures], timeout=max(0.0, deadline - time.monotonic()))

        redis_ok = all(p.done() and p.result() for p in pings)
        checks["redis"] = Check(ok=redis_ok, reason="" if redis_ok else (
            "unreachable" if all(p.done() for p in pings) else "timeout"))
        checks["chains"] = {
            code: future if isinstance(future, Check) else
            future.result() if future.done() else Check(ok=False, reason="timeout")
            for code, future in chains.items()
        }
        bound = settings.GATEWAY_READYZ_MAX_WEBHOOK_BACKLOG
        if reads.backlog is None:
            checks["webhook_backlog"] = Check(ok=False, reason="unknown")
        else:
            over = reads.backlog > bound
            checks["webhook_backlog"] = Check(ok=not over, reason="over_bound" if over else "",
                                              details={"due": reads.backlog, "max": bound})
    finally:
        executor.shutdown(wait=False, cancel_futures=True)  # a hung check finishes (by its own timeout) unattended

    ready = checks["database"].ok and checks["redis"].ok and checks["webhook_backlog"].ok and all(
        c.ok for c in checks["chains"].values())
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {
            "database": checks["database"].as_json(),
            "redis": checks["redis"].as_json(),
            "chains": {code: c.as_json() for code, c in checks["chains"].items()},
            "webhook_backlog": checks["webhook_backlog"].as_json(),
        },
    }
    return ready, body


@dataclass(frozen=True)
class EndpointHealth:
    network: str
    endpoint: str  # masked: scheme://host:port (and /*** when the URL carries a path, a key or a password)
    ok: bool
    reason: str
    head: int | None
    milliseconds: int


def _endpoint_health(network: dict, url: str, timeout: float) -> EndpointHealth:
    started = time.monotonic()
    reason, head = _chain_head(network, [url], timeout)
    return EndpointHealth(network=network["code"], endpoint=mask_url(url), ok=not reason, reason=reason, head=head,
                          milliseconds=int((time.monotonic() - started) * 1000))


def rpc_endpoints_health(*, timeout: float = 2.0) -> list[EndpointHealth]:
    """Every RPC endpoint of the active networks, asked now (in parallel, one attempt each) for its chain id and
    head: the operations page's view of the nodes, URL by URL."""
    networks = [
        {"code": n.code, "chain_id": n.chain_id, "urls": rpc_urls(code=n.code, rpc_env=n.rpc_env)}
        for n in Network.objects.filter(is_active=True).order_by("livemode", "code")
    ]
    jobs = [(network, url) for network in networks for url in network["urls"]]
    if not jobs:
        return []
    executor = ThreadPoolExecutor(max_workers=min(16, len(jobs)), thread_name_prefix="rpc-health")
    try:
        futures = [executor.submit(_endpoint_health, network, url, timeout) for network, url in jobs]
        wait(futures, timeout=timeout + 0.5)
        return [
            future.result() if future.done() else
            EndpointHealth(network=network["code"], endpoint=mask_url(url), ok=False, reason="timeout", head=None,
                           milliseconds=int(timeout * 1000))
            for future, (network, url) in zip(futures, jobs)
        ]
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def network_chain_check(network: Network, *, timeout: float = 3.0) -> Check:
    """The readiness probe's chain check of one network (its RPC URLs answer with its chain id, the scanner within
    its lag bound), for `manage.py check_live`; not configured: `unconfigured`."""
    urls = rpc_urls(code=network.code, rpc_env=network.rpc_env)
    if not urls:
        return Check(ok=False, reason="unconfigured")
    cursor = ChainCursor.objects.filter(network=network).values_list("block_number", flat=True).first()
    row = {"code": network.code, "chain_id": network.chain_id, "block_time_ms": network.block_time_ms,
           "cursor": cursor}
    return _chain_check(row, urls, timeout)


def endpoint_chain_check(network: Network, url: str, *, timeout: float = 3.0) -> EndpointHealth:
    """One RPC URL of a network asked for its chain id and head (one attempt)."""
    return _endpoint_health({"code": network.code, "chain_id": network.chain_id}, url, timeout)
