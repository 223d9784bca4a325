"""Celery tasks of the transaction manager. Thin, safe to run twice and to be killed at any line.

`sign_outgoing_transactions` runs on the `signer` queue ONLY (CELERY_TASK_ROUTES): its workers are the only processes
that hold GATEWAY_KEK and build the signer backend. `send_outgoing_transactions` runs on the `chain` queue and never
touches a key: it broadcasts the stored bytes and follows them to finality."""
import logging

from celery import shared_task

from wallets.chain.scanner import rpc_client_or_none
from wallets.models import Network

from . import services

logger = logging.getLogger(__name__)

SIGN_BUDGET_SECONDS = 20.0


@shared_task(name="wallets.tasks.sign_outgoing_transactions", time_limit=60, soft_time_limit=45, ignore_result=True)
def sign_outgoing_transactions() -> int:
    """Sign what waits for a signature (queued or to be replaced), one database transaction each, for a few
    seconds at most; a row that fails is logged and skipped. Returns how many were signed."""
    from wallets.signer import step  # the signing step lives with the signer (wallets/signer/step.py)

    return step.outgoing_transactions_sign(budget_seconds=SIGN_BUDGET_SECONDS)


@shared_task(name="wallets.tasks.send_outgoing_transactions", time_limit=60, soft_time_limit=45, ignore_result=True)
def send_outgoing_transactions() -> dict | None:
    """One pass of the transaction manager over every active network with an RPC URL."""
    summaries = {}
    for network in Network.objects.filter(is_active=True).order_by("id"):
        client = rpc_client_or_none(network)
        if client is None:
            continue
        summary = services.outgoing_transactions_process(network=network, client=client)
        if summary.as_json():
            summaries[network.code] = summary.as_json()
    return summaries or None
