"""Celery tasks of the wallets app: the chain scanner's beat fallback, and reconciliation. Thin: they pick the
networks and call `network_scan` (which steps one network in transactions of its own: safe to run twice, to overlap
with `manage.py watch`, and to be killed at any line: a killed step rolls back and the next one redoes it) or
`network_reconcile` (one transaction per batch of addresses; a discrepancy is recorded once)."""
import logging
import time

from celery import shared_task

from .chain.reconcile import network_reconcile
from .chain.scanner import network_scan, rpc_client_or_none
from .models import Network

logger = logging.getLogger(__name__)

SCAN_CHAINS_BUDGET_SECONDS = 4.0  # beat sends scan_chains every 2 s (expiring after 2 s): a run overlaps one more
SCAN_NETWORK_BUDGET_SECONDS = 10.0
LAG_LOG_BLOCKS = 20  # scan_chains logs a network whose cursor is further than this behind the head ...
LAG_LOG_SECONDS = 30.0  # ... at most this often per network and process (it runs every 2 s)
_lag_logged: dict[str, float] = {}


@shared_task(name="wallets.tasks.scan_chains", time_limit=40, soft_time_limit=30, ignore_result=True)
def scan_chains() -> dict | None:
    """Step every active network that has an RPC URL until it is caught up, sharing a few seconds between them
    (a network busy elsewhere, under another scanner's lock, is skipped at once)."""
    started = time.monotonic()
    networks = [
        (network, client) for network in Network.objects.filter(is_active=True).order_by("id")
        if (client := rpc_client_or_none(network)) is not None
    ]
    summaries = {}
    for i, (network, client) in enumerate(networks):
        remaining = SCAN_CHAINS_BUDGET_SECONDS - (time.monotonic() - started)
        if remaining <= 0:
            break
        summary = network_scan(network=network, client=client, budget_seconds=remaining / (len(networks) - i))
        if summary.transfers_seen or summary.transfers_finalized or summary.transfers_orphaned or summary.reorgs:
            summaries[network.code] = summary.as_json()
        if summary.back_off and summary.last_status != "locked":
            logger.warning("scan %s: %s (%s)", network.code, summary.last_status, summary.error)
        _lag_log(summary)
    return summaries or None  # None when nothing happened: the worker's log stays quiet every 2 s


@shared_task(name="wallets.tasks.scan_network", time_limit=60, soft_time_limit=45, ignore_result=True)
def scan_network(network_id: int) -> dict | None:
    """Step one network until it is caught up (or a few seconds are spent)."""
    network = Network.objects.filter(id=network_id, is_active=True).first()
    client = rpc_client_or_none(network) if network is not None else None
    if client is None:
        return None
    return network_scan(network=network, client=client, budget_seconds=SCAN_NETWORK_BUDGET_SECONDS).as_json()


def _lag_log(summary) -> None:
    """One line per lagging network every LAG_LOG_SECONDS: `manage.py watch` logs the lag itself, but when only the
    beat fallback scans, this is where a chain falling behind shows in the logs."""
    lag = summary.lag
    if lag is None or lag <= LAG_LOG_BLOCKS:
        _lag_logged.pop(summary.network, None)
        return
    now = time.monotonic()
    if now - _lag_logged.get(summary.network, float("-inf")) < LAG_LOG_SECONDS:
        return
    _lag_logged[summary.network] = now
    logger.warning("scan %s: lag %d blocks (cursor %s, head %s, final %s)", summary.network, lag, summary.cursor,
                   summary.head, summary.finalized)


@shared_task(name="wallets.tasks.reconcile_balances", time_limit=600, soft_time_limit=540, ignore_result=True)
def reconcile_balances() -> dict:
    """Reconcile every active network that has an RPC URL (beat: every 10 minutes, queue "chain"). Each batch of
    addresses commits on its own and a discrepancy is recorded once, so a run killed by the time limit loses only
    its current batch and the next run redoes it."""
    summaries = {}
    for network in Network.objects.filter(is_active=True).order_by("id"):
        client = rpc_client_or_none(network)
        if client is None:
            continue
        summary = network_reconcile(network=network, client=client)
        summaries[network.code] = summary.as_json()
        logger.info("reconcile %s: %s at block %s, %d addresses, %d balances checked, %d differences (%d new), "
                    "%d skipped (transfers not final yet)%s", network.code, summary.status, summary.block_number,
                    summary.addresses, summary.balances, summary.differences, summary.recorded,
                    summary.skipped_pending, f": {summary.error}" if summary.error else "")
    return summaries


# The transaction manager's tasks (wallets/outgoing/tasks.py), registered under wallets.tasks.* names.
from .outgoing.tasks import send_outgoing_transactions, sign_outgoing_transactions  # noqa: E402,F401
