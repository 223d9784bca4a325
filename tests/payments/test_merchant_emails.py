"""The merchant's emails (payments.notifications, merchants.emails): payment received, webhook endpoint failing,
daily summary. Each is sent once (a task run twice sends nothing more), only when the merchant turned it on, to its
notification emails (else its owners), with the business name escaped in the HTML part."""
from datetime import UTC, datetime, time, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from gateway.celery import app as celery_app
from merchants import services as merchant_services
from merchants.models import NotificationSent, WebhookEndpoint
from payments import notifications, tasks
from payments.models import Charge, PaymentIntent, WebhookDelivery
from payments.webhooks.services import AttemptResult, delivery_attempts_record
from tests.payments.portal import make_charge, make_delivery, make_event, make_intent, portal_merchant
from tests.payments.test_funding import DUE, apply, pay

XSS = '<script>alert("x")</script>'


@pytest.fixture
def eager():
    """Tasks sent with apply_async run at once, in the test's process (the test's transaction)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def shop(db):
    merchant = portal_merchant("owner@shop.example", name="Shop")
    merchant.public_name = XSS
    merchant.save()
    return merchant


def html_of(message) -> str:
    return next(body for body, kind in message.alternatives if kind == "text/html")


def turn_on(merchant, **flags):
    for name, value in flags.items():
        setattr(merchant, name, value)
    merchant.save()


# --- Payment received ------------------------------------------------------------------------------------------

@pytest.fixture
def paying(shop, ready):
    from payments.services import PaymentIntentInput, payment_intent_create

    return payment_intent_create(merchant=shop, livemode=False,
                                 data=PaymentIntentInput(amount=1234, currency="usd", networks=["bsc"],
                                                         description=XSS))


def test_payment_received_is_emailed_once_after_commit(paying, shop, eager, django_capture_on_commit_callbacks):
    turn_on(shop, notify_payment_succeeded=True, notification_emails=["ops@shop.example"])
    pay(paying, DUE, final=True)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        apply()
    assert PaymentIntent.objects.get(pk=paying.pk).status == PaymentIntent.Status.SUCCEEDED
    assert mail.outbox == []  # nothing is sent inside the transaction
    for callback in callbacks:
        callback()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@shop.example"]
    assert "$12.34" in message.subject and paying.id in message.body
    html = html_of(message)
    assert XSS not in html and "&lt;script&gt;" in html

    # The task run again (a retry) sends nothing more.
    assert notifications.notify_payment_succeeded(paying.id) is False
    assert len(mail.outbox) == 1


def test_payment_received_is_not_emailed_when_off(paying, shop, eager, django_capture_on_commit_callbacks,
                                                  monkeypatch):
    enqueued = []
    monkeypatch.setattr(notifications, "_enqueue", lambda task, *args: enqueued.append((task, args)))
    pay(paying, DUE, final=True)
    with django_capture_on_commit_callbacks(execute=True):
        apply()
    assert PaymentIntent.objects.get(pk=paying.pk).status == PaymentIntent.Status.SUCCEEDED
    assert enqueued == [] and mail.outbox == []
    assert notifications.payment_succeeded_notify(intent_id=paying.id) is False and mail.outbox == []


def test_emails_go_to_the_owners_when_no_notification_email_is_set(shop, networks):
    intent = make_intent(shop, address=True)
    make_charge(intent)
    turn_on(shop, notify_payment_succeeded=True)
    assert notifications.payment_succeeded_notify(intent_id=intent.id) is True
    assert mail.outbox[0].to == ["owner@shop.example"]


# --- Webhook endpoint failing ----------------------------------------------------------------------------------

@pytest.fixture
def endpoint(shop):
    return merchant_services.webhook_endpoint_create(merchant=shop, livemode=False, url="https://hooks.example/x",
                                                     enabled_events=["*"])


def attempt(endpoint, *, ok=False):
    delivery = make_delivery(endpoint, make_event(endpoint.merchant), status=WebhookDelivery.Status.PENDING)
    now = timezone.now()
    return AttemptResult(delivery_id=delivery.pk, endpoint_id=endpoint.id, attempts_before=1,
                         delivery_created=now, started_at=now, duration_ms=5, status_code=200 if ok else 500,
                         error="", response_body="")


def record(endpoint, n, *, ok=False, callbacks_fixture):
    with callbacks_fixture(execute=True):
        delivery_attempts_record(results=[attempt(endpoint, ok=ok) for _ in range(n)], now=timezone.now())


def test_a_failing_endpoint_is_emailed_once_per_incident(endpoint, shop, eager, settings,
                                                         django_capture_on_commit_callbacks):
    settings.GATEWAY_WEBHOOK_FAILING_EMAIL_AFTER = 3
    record(endpoint, 2, callbacks_fixture=django_capture_on_commit_callbacks)
    assert mail.outbox == []
    record(endpoint, 1, callbacks_fixture=django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    assert endpoint.id in mail.outbox[0].body and "3 times in a row" in mail.outbox[0].body
    assert XSS not in html_of(mail.outbox[0])
    record(endpoint, 5, callbacks_fixture=django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    # The task run again for the same incident sends nothing.
    assert notifications.webhook_failing_notify(endpoint_id=endpoint.id) is False

    # A success ends the incident; a new run of failures is a new one.
    record(endpoint, 1, ok=True, callbacks_fixture=django_capture_on_commit_callbacks)
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 0
    record(endpoint, 3, callbacks_fixture=django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2
    assert NotificationSent.objects.filter(kind="webhook_failing").count() == 2


def test_a_failing_endpoint_is_not_emailed_when_off(endpoint, shop, eager, settings,
                                                    django_capture_on_commit_callbacks):
    settings.GATEWAY_WEBHOOK_FAILING_EMAIL_AFTER = 2
    turn_on(shop, notify_webhook_failing=False)
    record(endpoint, 4, callbacks_fixture=django_capture_on_commit_callbacks)
    assert mail.outbox == []
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 4


def test_the_disabled_endpoint_email_goes_to_the_notification_emails(endpoint, shop, django_capture_on_commit_callbacks):
    from payments.webhooks.services import endpoint_disable

    turn_on(shop, notification_emails=["dev@shop.example"])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_disable(endpoint_id=endpoint.id, reason="failing", notify=True)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dev@shop.example"]
    assert mail.outbox[0].subject == "Webhook endpoint disabled" and endpoint.id in mail.outbox[0].body


# --- Daily summary ---------------------------------------------------------------------------------------------

def _yesterday_charge(merchant, *, amount_base_units=10 ** 18, livemode=False):
    intent = make_intent(merchant, address=True, livemode=livemode)
    charge = make_charge(intent, amount_base_units=amount_base_units)
    yesterday = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    Charge.objects.filter(pk=charge.pk).update(created=datetime.combine(yesterday, time(12), tzinfo=UTC))
    return charge


def test_the_daily_summary_is_sent_once_even_if_the_task_runs_twice(shop, networks):
    turn_on(shop, notify_daily_summary=True)
    _yesterday_charge(shop)
    _yesterday_charge(shop, amount_base_units=25 * 10 ** 17)
    make_charge(make_intent(shop, address=True))  # today's: not in yesterday's summary
    assert tasks.send_daily_summaries() == 1
    assert tasks.send_daily_summaries() == 0
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    yesterday = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    assert f"{yesterday:%Y-%m-%d}" in message.subject
    assert "2 payments, 3.50 USDT" in message.body and "Total: 2 payments." in message.body
    html = html_of(message)
    assert XSS not in html and "&lt;script&gt;" in html
    assert NotificationSent.objects.filter(merchant=shop, kind="daily_summary", key=yesterday.isoformat()).exists()


def test_the_daily_summary_is_not_sent_when_off(shop, networks):
    _yesterday_charge(shop)
    assert tasks.send_daily_summaries() == 0
    assert mail.outbox == []


def test_a_summary_that_failed_to_send_is_sent_by_the_next_run(shop, networks, monkeypatch):
    turn_on(shop, notify_daily_summary=True)
    calls = []

    def broken(**kwargs):
        calls.append(kwargs)
        raise OSError("mail server down")

    monkeypatch.setattr(notifications.emails, "daily_summary_send", broken)
    assert tasks.send_daily_summaries() == 0
    assert calls and not NotificationSent.objects.exists()
    monkeypatch.undo()
    assert tasks.send_daily_summaries() == 1
    assert len(mail.outbox) == 1 and "No payments." in mail.outbox[0].body


def test_two_runs_at_once_send_the_daily_summary_once(transactional_db, networks):
    """Two workers run the beat task at the same moment: the claim's unique row lets one send, the other waits for it
    and finds the day sent."""
    import threading

    from django.db import connection

    merchant = portal_merchant("owner@both.example", name="Both")
    turn_on(merchant, notify_daily_summary=True)
    day = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    barrier, results = threading.Barrier(2), []

    def run():
        try:
            barrier.wait(timeout=30)
            results.append(notifications.daily_summary_send(merchant_id=merchant.pk, day=day))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [False, True]
    assert len(mail.outbox) == 1
