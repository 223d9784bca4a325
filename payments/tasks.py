import logging

from celery import shared_task
from django.utils import timezone

from . import funding, selectors, services

logger = logging.getLogger(__name__)


@shared_task(name="payments.tasks.expire_payment_intents", time_limit=120, soft_time_limit=100)
def expire_payment_intents() -> int:
    """Beat task: cancel open intents past `expires_at`. Each one is its own transaction; safe to run twice and
    to be killed at any line (an intent is either still open or canceled with its event)."""
    expired = 0
    for intent_id in selectors.payment_intent_ids_due_for_expiry(now=timezone.now()):
        if services.payment_intent_expire(intent_id=intent_id) is not None:
            expired += 1
    if expired:
        logger.info("expired %d payment intents", expired)
    return expired


@shared_task(name="payments.tasks.process_address_activity", time_limit=120, soft_time_limit=100)
def process_address_activity() -> int:
    """Sent by the chain watcher after it records transfers; also on beat as a fallback. Safe to run twice and to be
    killed anywhere: the queue rows go away only in the transaction that applied them."""
    return funding.address_activity_process()
