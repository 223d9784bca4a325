"""`manage.py watch [--chain CODE]`: the chain watcher, one thread per active network.

Each thread wakes on the node's WebSocket `newHeads` (within milliseconds of a block) or, while no socket is up,
polls every block time; then steps the scanner until it is caught up and logs the chain lag (head minus cursor).
Run one per deployment or several: the per-network advisory lock lets exactly one scan a chain at a time, and the
Celery beat `scan_chains` stays as the fallback. Stops on SIGINT / SIGTERM (a step in progress commits or rolls
back as a whole).
"""
import logging
import os
import signal
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connection

from gateway.logs import role_set
from wallets.chain.scanner import network_scan, rpc_client_or_none
from wallets.chain.ws import subscribe_new_heads
from wallets.models import Network

logger = logging.getLogger("wallets.watch")

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
LAG_LOG_SECONDS = 30.0  # log the lag at least this often, and whenever it changes much
MAX_BACK_OFF_SECONDS = 30.0


def ws_url_for(network: Network, client) -> str | None:
    """`<rpc_env>_WS` from the environment; for the devnet (or any loopback node) the HTTP URL as ws://."""
    configured = os.environ.get(f"{network.rpc_env}_WS", "").strip() if network.rpc_env else ""
    if configured:
        return configured.split(",")[0].strip()
    parts = urlsplit(client.endpoints[0].url)
    if network.code == "devnet" or parts.hostname in LOOPBACK:
        return urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, parts.path, parts.query, ""))
    return None


def _wait_for_either(wake: threading.Event, stop: threading.Event, timeout: float) -> None:
    """Until a new head, a stop, or `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and not wake.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        wake.wait(min(0.2, remaining))


class Command(BaseCommand):
    help = "Watch the active networks: scan on every new head (WebSocket) or every block time; log the chain lag."

    def add_arguments(self, parser):
        parser.add_argument("--chain", metavar="NETWORK_CODE", help="only this network (default: every active one)")
        parser.add_argument("--no-ws", action="store_true", help="poll only, never open a WebSocket")
        parser.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                            help="stop after SECONDS (default: run until SIGINT / SIGTERM)")

    def handle(self, *args, chain, no_ws, duration, **options):
        role_set("watcher")  # the role in the log lines (gateway.logs)
        networks = Network.objects.filter(is_active=True).order_by("id")
        if chain:
            networks = Network.objects.filter(code=chain)
            if not networks.exists():
                raise CommandError(f"no network {chain!r}")
        watched = [n for n in networks if rpc_client_or_none(n) is not None]
        if not watched:
            raise CommandError("no network to watch: none is active with an RPC URL configured")

        stop = threading.Event()
        previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
        threads = [
            threading.Thread(target=self._watch, args=(network.id, stop, not no_ws), name=f"watch-{network.code}",
                             daemon=True)
            for network in watched
        ]
        try:
            for thread in threads:
                thread.start()
            self.stderr.write(f"watching {', '.join(n.code for n in watched)}")
            deadline = time.monotonic() + duration if duration > 0 else None
            while not stop.is_set() and all(t.is_alive() for t in threads):
                stop.wait(0.2)
                if deadline is not None and time.monotonic() >= deadline:
                    stop.set()
            if not stop.is_set():
                # A watch thread died of an error it could not recover from: exit non-zero, so that a supervisor
                # restarts the whole watcher instead of leaving a chain unwatched behind a live process.
                dead = [t.name for t in threads if not t.is_alive()]
                raise CommandError(f"watch thread(s) stopped unexpectedly: {', '.join(dead)}")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch(self, network_id: int, stop: threading.Event, use_ws: bool) -> None:
        try:
            network = Network.objects.get(id=network_id)
            client = rpc_client_or_none(network)
            poll = max(0.05, network.block_time_ms / 1000)
            wake = threading.Event()
            last_head_at = [0.0]

            def on_head(number: int, block_hash: str) -> None:
                last_head_at[0] = time.monotonic()
                wake.set()

            ws_url = ws_url_for(network, client) if use_ws else None
            if ws_url:
                threading.Thread(target=subscribe_new_heads, args=(ws_url, on_head, stop),
                                 name=f"newheads-{network.code}", daemon=True).start()
            silence = max(5 * poll, 2.0)  # no head for this long: the socket is down (or was never up), poll
            back_off, last_log, last_lag = 0.0, 0.0, None
            while not stop.is_set():
                close_old_connections()
                try:
                    summary = network_scan(network=network, client=client, budget_seconds=max(2.0, 4 * poll))
                except DatabaseError:
                    # The step rolled back as a whole (a deadlock, a lost connection, a database restart): a new
                    # connection and another try, never a dead thread (the watcher would stop watching for good).
                    logger.exception("%s: database error, nothing written; retrying", network.code)
                    connection.close()
                    back_off = min(MAX_BACK_OFF_SECONDS, max(poll, back_off * 2))
                    _wait_for_either(wake, stop, back_off)
                    wake.clear()
                    continue
                now = time.monotonic()
                lag = summary.lag
                if summary.steps and (now - last_log >= LAG_LOG_SECONDS or summary.transfers_seen
                                      or summary.reorgs or (lag or 0) > 10 and lag != last_lag):
                    logger.info("%s: cursor %s head %s final %s lag %s (%s, %d transfers, %d reorgs)", network.code,
                                summary.cursor, summary.head, summary.finalized, lag, summary.last_status,
                                summary.transfers_seen, summary.reorgs)
                    last_log, last_lag = now, lag
                if summary.back_off:
                    if summary.last_status != "locked":
                        logger.warning("%s: %s, backing off %.1fs (%s)", network.code, summary.last_status,
                                       back_off or poll, summary.error)
                    back_off = min(MAX_BACK_OFF_SECONDS, max(poll, back_off * 2))
                    _wait_for_either(wake, stop, back_off)
                    wake.clear()
                    continue
                back_off = 0.0
                if not summary.caught_up:
                    continue
                socket_alive = now - last_head_at[0] < silence
                _wait_for_either(wake, stop, silence if socket_alive else poll)
                wake.clear()
        except Exception:
            logger.exception("watch thread %s died", network_id)
            raise
        finally:
            connection.close()
