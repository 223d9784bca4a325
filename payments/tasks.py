import logging

from celery import shared_task
from django.utils import timezone

from . import funding, notifications, selectors
from .notifications import notify_payment_succeeded, notify_webhook_failing  # noqa: F401 (registered with Celery)
from .webhooks.delivery import deliver

logger = logging.getLogger(__name__)


@shared_task(name="payments.tasks.expire_payment_intents", time_limit=120, soft_time_limit=100)
def expire_payment_intents() -> int:
    """Beat task: cancel open intents past `expires_at`. Each one is its own transaction; safe to run twice and
    to be killed at any line (an intent is either still open or canceled with its event)."""
    expired = 0
    for intent_id in selectors.payment_intent_ids_due_for_expiry(now=timezone.now()):
        if funding.payment_intent_expire_checked(intent_id=intent_id) is not None:
            expired += 1
    if expired:
        logger.info("expired %d payment intents", expired)
    return expired


@shared_task(name="payments.tasks.process_address_activity", time_limit=120, soft_time_limit=100)
def process_address_activity() -> int:
    """Sent by the chain watcher after it records transfers; also on beat as a fallback. Safe to run twice and to be
    killed anywhere: the queue rows go away only in the transaction that applied them."""
    return funding.address_activity_process()


@shared_task(name="payments.tasks.deliver_webhooks", time_limit=90, soft_time_limit=75)
def deliver_webhooks(duration: float = 5.0) -> dict:
    """Beat task (queue "webhooks"): fan out new events and send the deliveries that are due, for up to `duration`
    seconds or until nothing is left to do, then wait for the requests in flight. Safe to run beside
    `manage.py deliver_webhooks` and several times at once; killed at any line, its leased deliveries come back."""
    return deliver(duration=duration, until_idle=True)


@shared_task(name="payments.tasks.send_daily_summaries", time_limit=600, soft_time_limit=540)
def send_daily_summaries() -> int:
    """Beat task (hourly): yesterday's summary to each merchant that wants one, once per merchant and day
    (merchants.NotificationSent): running it again, or every hour, sends nothing twice; a run that failed for a
    merchant is made up by the next."""
    return notifications.daily_summaries_send()
