"""The sender: fan events out, claim due deliveries, POST them concurrently, record every attempt.

One asyncio loop; the database work (fan-out, claims, records) runs in one thread of its own, so the loop never
blocks on PostgreSQL. Several dispatchers (the `deliver_webhooks` command, the Celery task) can run at once and
share the work: fan-out and claims use SKIP LOCKED, and a claimed delivery is leased (`next_attempt_at` moved past
the request timeout), so a dispatcher killed at any line loses nothing: its deliveries come back when the lease ends.

A slow or dead endpoint never delays the others: each endpoint has its own budget of requests in flight
(GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY); a claim takes at most that many rows of one endpoint and none of an endpoint
already at its budget in this process. An endpoint that is failing (`failing_since` set, or a failure seen here) is
in a slow lane: a claim takes at most a quarter of the budget of its rows, and it is then left out of the claims for
FAILING_ENDPOINT_PAUSE_SECONDS, so an endpoint that fails fast (a 500, a refused connection) cannot eat the sender's
CPU at the healthy endpoints' expense; its first attempts wait, it is retried as usual, and its first success puts it
back in the fast lane. The slow lane as a whole holds at most GATEWAY_WEBHOOK_SLOW_LANE_SHARE of
GATEWAY_WEBHOOK_MAX_IN_FLIGHT (a quarter: 250 of 1,000): however many endpoints hang until the timeout, the rest of
the sender stays free for the healthy ones.
"""
import asyncio
import concurrent.futures
import ipaddress
import json
import logging
import random
import socket
import threading
import time
from collections import defaultdict

import aiohttp
import psycopg
from aiohttp.abc import AbstractResolver
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from yarl import URL

from gateway import logs, ssrf
from merchants.selectors import webhook_endpoint_signing_secrets

from ..presenters import event_json
from . import fanout, services
from .signing import signature_header

logger = logging.getLogger("payments.webhooks")

NOTIFY_CHANNEL = "payments_event"  # the trigger of migration 0004 notifies it on every insert of events
RESPONSE_BODY_BYTES = 1024
USER_AGENT = "GatewayWebhooks/1.0"
FAILING_ENDPOINT_PAUSE_SECONDS = 1.0
# The database thread checks its connection (Django's health check, CONN_MAX_AGE) at most this often, and after any
# error: a check per call cost a round trip (SELECT 1) before every fan-out, claim and record.
DB_CHECK_SECONDS = 5.0
# Finished attempts are recorded in batches: the recorder waits this long for more results unless RECORD_BATCH are
# already waiting (a delivery's state is written at most this much later; its POST is not delayed).
RECORD_GATHER_SECONDS = 0.05
RECORD_BATCH = 200
FAN_OUT_BATCH = 1000  # events fanned out per transaction


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for webhook hosts: resolves with gateway.ssrf.host_addresses and refuses the connection
    if any address is private, loopback (unless allowed), link-local, multicast or cloud metadata. aiohttp connects
    to the addresses returned here, so the address checked is the address used (no DNS rebinding)."""

    def __init__(self, *, allow_loopback: bool):
        self.allow_loopback = allow_loopback

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        addresses = await asyncio.get_running_loop().run_in_executor(None, ssrf.host_addresses, host)
        refused = [a for a in addresses if not ssrf.address_allowed(a, allow_loopback=self.allow_loopback)]
        if refused:
            raise ssrf.UnsafeUrl(f"{host} resolves to a forbidden address ({refused[0]}).")
        return [{"hostname": host, "host": str(a), "port": port,
                 "family": socket.AF_INET6 if a.version == 6 else socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST} for a in addresses]

    async def close(self) -> None:
        pass


def url_checked(url: str, *, livemode: bool) -> URL:
    """The URL if its scheme is http(s) and, when its host is an IP literal (which aiohttp connects to without a
    resolver), that address is allowed; host names are checked by GuardedResolver when connecting."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ssrf.UnsafeUrl("The URL must be http(s) with a host.")
    try:
        address = ipaddress.ip_address(parsed.host.strip("[]"))
    except ValueError:
        return parsed
    if not ssrf.address_allowed(address, allow_loopback=ssrf.loopback_allowed(livemode=livemode)):
        raise ssrf.UnsafeUrl(f"{address} is a forbidden address.")
    return parsed


class Dispatcher:
    def __init__(self, *, batch: int = 200, poll_seconds: float = 0.5, rng: random.Random | None = None):
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.timeout = float(settings.GATEWAY_WEBHOOK_TIMEOUT_SECONDS)
        self.per_endpoint = int(settings.GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY)
        self.max_in_flight = int(settings.GATEWAY_WEBHOOK_MAX_IN_FLIGHT)
        self.per_failing = max(1, self.per_endpoint // 4)
        # requests in flight of the failing endpoints, in all: the slow lane's share of the sender
        self.slow_lane_capacity = max(1, int(self.max_in_flight * float(settings.GATEWAY_WEBHOOK_SLOW_LANE_SHARE)))
        self.rng = rng or random.Random()
        self.in_flight: dict[str, int] = defaultdict(int)
        self.semaphores: dict[str, asyncio.Semaphore] = {}
        self.total_in_flight = 0
        self.paused_until: dict[str, float] = {}  # failing endpoints in the slow lane, until their next claim
        self.failing: set[str] = set()  # endpoints seen failing (claims, results); a success removes one
        self.results: list[services.AttemptResult] = []
        self.tasks: set[asyncio.Task] = set()
        self.counts = {"fanned_out": 0, "claimed": 0, "succeeded": 0, "failed": 0}
        self._db_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks-db")
        self._db_checked = float("-inf")  # when the database thread last checked its connection
        self._db_suspect = False  # the last call failed: check the connection before the next one

    # --- database work, in the one database thread ------------------------------------------------------------

    async def db(self, fn, *args, **kwargs):
        def call():
            now = time.monotonic()
            if self._db_suspect or now - self._db_checked >= DB_CHECK_SECONDS:
                close_old_connections()
                self._db_checked, self._db_suspect = now, False
            try:
                return fn(*args, **kwargs)
            except Exception:
                self._db_suspect = True
                raise
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, call)

    def _fan_out_batch(self) -> int:
        return fanout.events_fan_out(now=timezone.now(), limit=FAN_OUT_BATCH)[0]

    def _step(self, fan_out: bool, claim_args: tuple | None) -> tuple[int, list]:
        """The database thread's step: the fan-out (when due), then the claim (unless the sender has no room). The
        last fan-out batch and the claim share one transaction (one commit per step, not two: the claim sees the
        deliveries just made, other senders see them claimed); a full batch commits on its own first, so a backlog
        is fanned out in bounded transactions, each kept if a later one fails. A stop that came while the fan-out
        ran ends the step there: what is claimed is sent, so a sender being stopped must not take more (it would
        hold it until its requests end or time out)."""
        fanned = 0
        while True:
            with transaction.atomic():
                batch = self._fan_out_batch() if fan_out else 0
                fanned += batch
                if batch == FAN_OUT_BATCH and not self.stop.is_set():
                    continue  # committed: more events may wait
                if claim_args is None or self.stop.is_set():
                    return fanned, []
                return fanned, self._claim(*claim_args)

    def _claim(self, limit: int, skip: list[str], failing: list[str], slow_lane: list[str], slow_room: int):
        """The fast lane (every endpoint not known here to be failing), then the slow lane: the failing endpoints
        whose pause is over, in a claim of their own so that their backlog never fills the fast lane's claim. Rows
        of failing endpoints, in either claim, take at most `slow_room` (what the slow lane's share has left)."""
        now = timezone.now()
        claimed = services.deliveries_claim(now=now, limit=limit, per_endpoint=self.per_endpoint,
                                            per_failing_endpoint=self.per_failing, max_failing=max(0, slow_room),
                                            skip_endpoints=skip + failing)
        slow_room -= sum(1 for c in claimed if c.endpoint.failing_since is not None)
        slow_limit = min(limit - len(claimed), slow_room)
        if slow_lane and slow_limit > 0:
            claimed += services.deliveries_claim(now=now, limit=slow_limit, per_endpoint=self.per_failing,
                                                 per_failing_endpoint=self.per_failing, skip_endpoints=skip,
                                                 only_endpoints=slow_lane)
        return claimed

    def _record(self, results):
        return services.delivery_attempts_record(results=results, now=timezone.now(), rng=self.rng)

    # --- the loop -----------------------------------------------------------------------------------------------

    async def run(self, *, duration: float | None = None, until_idle: bool = False, listen: bool = False,
                  stop: asyncio.Event | None = None) -> dict:
        """Deliver until `stop` is set, `duration` seconds have passed, or (with `until_idle`) nothing is left to
        do now. With `listen`, PostgreSQL notifications of new events wake the loop at once; it polls every
        `poll_seconds` anyway."""
        self.stop = stop or asyncio.Event()
        self.wake = asyncio.Event()
        self.freed = asyncio.Event()
        self.results_ready = asyncio.Event()
        self.closing = False
        deadline = time.monotonic() + duration if duration else None
        listener_stop = threading.Event()
        if listen:
            loop = asyncio.get_running_loop()
            threading.Thread(target=self._listen, args=(loop, listener_stop), daemon=True,
                             name="webhooks-listen").start()
        connector_args = {"limit": self.max_in_flight, "limit_per_host": 0, "ttl_dns_cache": 10}
        self.sessions = {
            livemode: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=GuardedResolver(allow_loopback=ssrf.loopback_allowed(livemode=livemode)),
                    **connector_args),
                timeout=aiohttp.ClientTimeout(total=self.timeout), auto_decompress=False,
                headers={"User-Agent": USER_AGENT, "Content-Type": "application/json; charset=utf-8"},
            )
            for livemode in (False, True)
        }
        recorder = asyncio.create_task(self._recorder())
        try:
            await self._loop(deadline, until_idle)
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            self.closing = True
            self.results_ready.set()
            await recorder  # the flush in progress (with its retries) and whatever is left
        finally:
            listener_stop.set()
            recorder.cancel()
            for session in self.sessions.values():
                await session.close()
            await self.db(lambda: connection.close())
            self._db_pool.shutdown(wait=True)
        return dict(self.counts)

    async def _loop(self, deadline, until_idle) -> None:
        last_fan_out = 0.0
        back_off = 0.0
        while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
            try:
                woken = self.wake.is_set()
                self.wake.clear()
                fan_out = woken or time.monotonic() - last_fan_out >= self.poll_seconds
                if fan_out:
                    last_fan_out = time.monotonic()
                capacity = self.max_in_flight - self.total_in_flight
                claim_args = None
                if capacity > 0 and not self.stop.is_set():
                    limit = min(capacity, self.batch)
                    now = time.monotonic()
                    self.paused_until = {eid: t for eid, t in self.paused_until.items() if t > now}
                    skip = [eid for eid, n in self.in_flight.items() if n >= self.per_endpoint]
                    slow_lane = sorted(self.failing - set(self.paused_until) - set(skip))
                    slow_room = self.slow_lane_capacity - sum(self.in_flight.get(eid, 0) for eid in self.failing)
                    claim_args = (limit, skip, sorted(self.failing), slow_lane, slow_room)
                    self.freed.clear()
                # One trip to the database thread for both steps (the fan-out feeds the claim).
                fanned, claimed = await self.db(self._step, fan_out, claim_args)
                self.counts["fanned_out"] += fanned
                self.counts["claimed"] += len(claimed)
                for delivery in claimed:
                    if delivery.endpoint.failing_since is not None:
                        self.failing.add(delivery.endpoint.id)
                    if delivery.endpoint.id in self.failing:
                        self.paused_until[delivery.endpoint.id] = now + FAILING_ENDPOINT_PAUSE_SECONDS
                    self._start(delivery)
                back_off = 0.0
            except Exception:
                back_off = min(10.0, max(0.5, back_off * 2))
                logger.exception("webhook dispatcher step failed; retrying in %.1fs", back_off)
                await asyncio.sleep(back_off)
                continue
            if until_idle and not fanned and not claimed and not self.tasks:
                return
            if capacity > 0 and len(claimed) == min(capacity, self.batch):
                await asyncio.sleep(0)  # more may be due: claim again at once
                continue
            await self._wait(deadline)

    async def _wait(self, deadline) -> None:
        timeout = self.poll_seconds
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - time.monotonic()))
        waiters = [asyncio.create_task(e.wait()) for e in (self.wake, self.freed, self.stop)]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def _listen(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        params = connection.settings_dict
        while not stop.is_set():
            try:
                with psycopg.connect(dbname=params["NAME"], user=params["USER"] or None,
                                     password=params["PASSWORD"] or None, host=params["HOST"] or None,
                                     port=params["PORT"] or None, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    loop.call_soon_threadsafe(self.wake.set)  # anything inserted before LISTEN
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            loop.call_soon_threadsafe(self.wake.set)
            except Exception:
                logger.warning("webhook listener lost its connection; polling until it is back", exc_info=True)
                stop.wait(2.0)

    # --- sending ------------------------------------------------------------------------------------------------

    def _start(self, delivery: services.ClaimedDelivery) -> None:
        endpoint_id = delivery.endpoint.id
        self.in_flight[endpoint_id] += 1
        self.total_in_flight += 1
        task = asyncio.create_task(self._send(delivery))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, delivery: services.ClaimedDelivery) -> None:
        # Its own asyncio task: the log context (the event, and the request that caused it) is this delivery's only.
        logs.request_id_var.set(delivery.event.request_id or "")
        logs.event_id_var.set(delivery.event.id)
        endpoint = delivery.endpoint
        semaphore = self.semaphores.get(endpoint.id)
        if semaphore is None:
            semaphore = self.semaphores[endpoint.id] = asyncio.Semaphore(self.per_endpoint)
        try:
            async with semaphore:
                result = await self.post(delivery)
            if result.succeeded:
                logger.debug("webhook delivery %s to %s: %s in %d ms", delivery.id, endpoint.id, result.status_code,
                             result.duration_ms)
            else:
                logger.info("webhook delivery %s to %s failed (attempt %d): %s %s", delivery.id, endpoint.id,
                            delivery.attempts + 1, result.status_code or "-", result.error[:200])
            self.results.append(result)
            self.counts["succeeded" if result.succeeded else "failed"] += 1
            if result.succeeded:
                self.failing.discard(endpoint.id)
            else:
                self.failing.add(endpoint.id)
            self.results_ready.set()
        finally:
            self.in_flight[endpoint.id] -= 1
            self.total_in_flight -= 1
            if self.in_flight[endpoint.id] <= 0:
                del self.in_flight[endpoint.id]
                self.semaphores.pop(endpoint.id, None)
            if self.in_flight.get(endpoint.id, 0) == self.per_endpoint - 1 or \
                    self.total_in_flight == self.max_in_flight - 1 or not self.in_flight:
                self.freed.set()

    async def post(self, delivery: services.ClaimedDelivery) -> services.AttemptResult:
        """One POST of the event, signed; never raises: every outcome is an attempt to record."""
        endpoint = delivery.endpoint
        started_at = timezone.now()
        t0 = time.monotonic()
        status_code, error, body = None, "", ""
        try:
            url = url_checked(endpoint.url, livemode=endpoint.livemode)
            payload = json.dumps(event_json(delivery.event), separators=(",", ":")).encode()
            secrets = webhook_endpoint_signing_secrets(endpoint, now=started_at)
            headers = {"Stripe-Signature": signature_header(payload, secrets, int(time.time()))}
            async with self.sessions[endpoint.livemode].post(url, data=payload, headers=headers,
                                                             allow_redirects=False) as response:
                status_code = response.status
                raw = await response.content.read(RESPONSE_BODY_BYTES)
                body = raw.decode("utf-8", "replace").replace("\x00", "")
                if 300 <= status_code < 400:
                    error = f"Redirect not followed (to {response.headers.get('Location', '?')[:200]})."
        except ssrf.UnsafeUrl as exc:
            error = f"Refused: {exc.message}"
        except asyncio.TimeoutError:
            error = f"Timed out after {self.timeout:g} s."
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug must not lose the attempt
            logger.exception("webhook POST to %s failed unexpectedly", endpoint.id)
            error = f"{type(exc).__name__}: {exc}"
        return services.AttemptResult(
            delivery_id=delivery.id, endpoint_id=endpoint.id, attempts_before=delivery.attempts,
            delivery_created=delivery.created, started_at=started_at,
            duration_ms=int((time.monotonic() - t0) * 1000), status_code=status_code, error=error[:500],
            response_body=body,
        )

    # --- recording ----------------------------------------------------------------------------------------------

    async def _recorder(self) -> None:
        while True:
            await self.results_ready.wait()
            if len(self.results) < RECORD_BATCH and not self.closing:
                await asyncio.sleep(RECORD_GATHER_SECONDS)  # gather: one transaction for many attempts
            self.results_ready.clear()
            while self.results:
                await self._flush()
            if self.closing:
                return

    async def _flush(self) -> None:
        batch, self.results = self.results[:1000], self.results[1000:]
        for attempt in range(3):
            try:
                await self.db(self._record, batch)
                return
            except Exception:
                logger.exception("recording %d webhook attempts failed (try %d)", len(batch), attempt + 1)
                await asyncio.sleep(0.5 * (attempt + 1))
        # Not recorded: the deliveries come back when their lease ends and are sent again (at least once).


def deliver(*, duration: float | None = None, until_idle: bool = False, listen: bool = False) -> dict:
    """Run a dispatcher in this thread (a new event loop) and return its counts."""
    return asyncio.run(Dispatcher().run(duration=duration, until_idle=until_idle, listen=listen))
