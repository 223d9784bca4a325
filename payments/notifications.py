"""The merchant's emails about its payments (merchants.emails renders and sends them; this module knows when and
what): a payment received, a webhook endpoint that keeps failing, the daily summary. Each is sent from a Celery task
(payments.tasks) in a transaction that first claims a merchants.NotificationSent row, so a task that runs twice (a
retry, two beat ticks, two workers) sends once; if sending fails, the claim rolls back with it and a later run tries
again. Nothing here runs in a request: the triggers enqueue after their transaction commits."""
import logging

from celery import shared_task
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from merchants import emails
from merchants.models import Merchant, NotificationSent, WebhookEndpoint
from merchants.services import notification_claim

from .home import amount_display, volume_by_day
from .models import PaymentIntent
from .views import format_fiat

logger = logging.getLogger(__name__)

Kind = NotificationSent.Kind


def _enqueue(task, *args) -> None:
    """Send the task once the caller's transaction commits; a broker outage is logged (robust), never raised into
    the caller: the fact it announces is committed."""
    transaction.on_commit(lambda: task.apply_async(args=args), robust=True)


# --- Payment received ------------------------------------------------------------------------------------------

def payment_succeeded_enqueue(intent: PaymentIntent) -> None:
    """Called where `payment_intent.succeeded` is recorded (payments.funding), in its transaction."""
    if intent.merchant.notify_payment_succeeded:
        _enqueue(notify_payment_succeeded, intent.id)


def payment_succeeded_notify(*, intent_id: str) -> bool:
    """Email the merchant that the intent succeeded, once per intent. False when off, not succeeded or sent."""
    with transaction.atomic():
        intent = PaymentIntent.objects.select_related("merchant").filter(pk=intent_id).first()
        if intent is None or intent.status != PaymentIntent.Status.SUCCEEDED:
            return False
        merchant = intent.merchant
        if not merchant.notify_payment_succeeded:
            return False
        if not notification_claim(merchant_id=merchant.pk, kind=Kind.PAYMENT_SUCCEEDED, key=intent.id):
            return False
        emails.payment_succeeded_send(merchant=merchant, intent_id=intent.id, livemode=intent.livemode,
                                      amount=format_fiat(intent.amount, intent.currency),
                                      description=intent.description)
    return True


# --- Webhook endpoint failing ----------------------------------------------------------------------------------

def webhook_failing_threshold() -> int:
    return settings.GATEWAY_WEBHOOK_FAILING_EMAIL_AFTER


def webhook_failing_enqueue(endpoint_ids: list[str]) -> None:
    """Called by the delivery recorder (payments.webhooks.services) for the endpoints whose run of consecutive
    failures just reached the threshold, in its transaction."""
    for endpoint_id in endpoint_ids:
        _enqueue(notify_webhook_failing, endpoint_id)


def webhook_failing_notify(*, endpoint_id: str) -> bool:
    """Email the merchant that the endpoint keeps failing: once per endpoint per incident (the incident is named by
    when it started failing, `failing_since`). False when it recovered, is disabled, the email is off, or sent."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_related("merchant").filter(pk=endpoint_id).first()
        if (endpoint is None or endpoint.failing_since is None or endpoint.deleted
                or endpoint.status != WebhookEndpoint.Status.ENABLED or not endpoint.merchant.notify_webhook_failing):
            return False
        key = f"{endpoint.id}:{endpoint.failing_since.isoformat()}"
        if not notification_claim(merchant_id=endpoint.merchant_id, kind=Kind.WEBHOOK_FAILING, key=key):
            return False
        emails.webhook_failing_send(endpoint=endpoint, failures=endpoint.consecutive_failures)
    return True


# --- Daily summary ---------------------------------------------------------------------------------------------

def summary_rows(*, merchant: Merchant, day: date) -> list[dict]:
    """The day's (UTC) succeeded charges per mode, network and token: count and volume (2 decimals)."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    rows = []
    for livemode in (True, False):
        for series in volume_by_day(merchant=merchant, livemode=livemode, since=start):
            count, amount = series.counts.get(day, 0), series.amounts.get(day, 0)
            if count:
                rows.append({"network": series.network_name, "token": series.token.upper(), "count": count,
                             "amount": amount_display(amount, series.decimals), "livemode": livemode})
    return rows


def daily_summary_send(*, merchant_id: str, day: date) -> bool:
    """The merchant's summary of `day`, once: False when it is off or was sent."""
    with transaction.atomic():
        merchant = Merchant.objects.filter(pk=merchant_id, is_active=True, notify_daily_summary=True).first()
        if merchant is None:
            return False
        if not notification_claim(merchant_id=merchant.pk, kind=Kind.DAILY_SUMMARY, key=day.isoformat()):
            return False
        emails.daily_summary_send(merchant=merchant, day=day, rows=summary_rows(merchant=merchant, day=day))
    return True


def daily_summaries_send(*, now: datetime | None = None) -> int:
    """Yesterday's (UTC) summary to every merchant that wants one and has not had it. Each merchant is its own
    transaction: one mail server error leaves the others sent and that one for the next run."""
    day = (now or timezone.now()).astimezone(UTC).date() - timedelta(days=1)
    sent = 0
    for merchant_id in Merchant.objects.filter(is_active=True, notify_daily_summary=True).values_list("pk", flat=True):
        try:
            sent += daily_summary_send(merchant_id=merchant_id, day=day)
        except Exception:
            logger.exception("daily summary of %s for %s not sent", merchant_id, day)
    return sent


# --- The tasks (named as payments.tasks', which imports them for Celery's autodiscovery) ---------------------------

@shared_task(name="payments.tasks.notify_payment_succeeded", time_limit=60, soft_time_limit=50,
             autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_payment_succeeded(intent_id: str) -> bool:
    return payment_succeeded_notify(intent_id=intent_id)


@shared_task(name="payments.tasks.notify_webhook_failing", time_limit=60, soft_time_limit=50,
             autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_webhook_failing(endpoint_id: str) -> bool:
    return webhook_failing_notify(endpoint_id=endpoint_id)
