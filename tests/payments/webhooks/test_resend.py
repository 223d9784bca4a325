"""Resending: the admin action (one delivery) and `manage.py resend_events` (in bulk)."""
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from merchants.models import WebhookEndpoint
from payments.models import Event, WebhookAttempt, WebhookDelivery
from payments.webhooks.fanout import events_fan_out
from payments.webhooks.services import deliveries_claim

from tests.otp import login_verified

from .test_delivery import make_event

pytestmark = pytest.mark.django_db


def test_the_admin_shows_deliveries_with_their_attempts_and_resends(client, merchant, make_endpoint):
    endpoint = make_endpoint("https://shop.example/hook")
    event = make_event(merchant)
    events_fan_out(now=timezone.now())
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(id=delivery.id).update(status="failed", attempts=12, next_attempt_at=None)
    WebhookAttempt.objects.create(delivery=delivery, started_at=timezone.now(), duration_ms=12, status_code=500,
                                  response_body="boom")
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-1234567")
    login_verified(client, admin)

    listing = client.get("/admin/payments/webhookdelivery/")
    assert listing.status_code == 200 and event.type in listing.content.decode()
    page = client.get(f"/admin/payments/webhookdelivery/{delivery.id}/change/")
    assert page.status_code == 200 and "boom" in page.content.decode()

    response = client.post("/admin/payments/webhookdelivery/", {"action": "resend",
                                                                 "_selected_action": [delivery.id]})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at <= timezone.now()
    assert delivery.attempts == 12 and WebhookAttempt.objects.count() == 1  # nothing else written
    assert [c.id for c in deliveries_claim(now=timezone.now(), limit=10, per_endpoint=10)] == [delivery.id]
    assert endpoint.id


def test_resend_events_resets_existing_deliveries_and_creates_missing_ones(merchant, make_endpoint):
    old = make_event(merchant, "payment_intent.succeeded")
    Event.objects.filter(id=old.id).update(created=timezone.now() - timedelta(days=2))
    since = timezone.now() - timedelta(hours=1)
    delivered = make_event(merchant, "payment_intent.succeeded")
    endpoint = make_endpoint("https://shop.example/hook", enabled_events=["payment_intent.succeeded"])
    WebhookDelivery.objects.create(endpoint=endpoint, event=delivered, status="succeeded", attempts=1)
    before_endpoint = make_event(merchant, "payment_intent.succeeded")  # no delivery: endpoint created after it
    make_event(merchant, "payment_intent.canceled")  # not a type the endpoint wants
    make_event(merchant, "payment_intent.succeeded", livemode=True)  # other mode
    Event.objects.update(fanned_out_at=timezone.now())

    out = StringIO()
    call_command("resend_events", "--endpoint", endpoint.id, "--since", since.isoformat(), "--json", stdout=out)

    assert json.loads(out.getvalue()) | {"since": None} == {"endpoint": endpoint.id, "since": None, "reset": 1,
                                                            "created": 1}
    rows = {d.event_id: d for d in WebhookDelivery.objects.filter(endpoint=endpoint)}
    assert set(rows) == {delivered.id, before_endpoint.id}
    assert all(d.status == "pending" and d.next_attempt_at <= timezone.now() for d in rows.values())


@pytest.mark.parametrize("args, message", [
    (["--endpoint", "we_nope", "--since", "2026-01-01T00:00:00Z"], "--endpoint"),
    (["--since", "yesterday"], "--since"),
])
def test_resend_events_refuses_bad_arguments(make_endpoint, args, message):
    endpoint = make_endpoint("https://shop.example/hook")
    if "--endpoint" not in args:
        args = ["--endpoint", endpoint.id, *args]
    with pytest.raises(CommandError, match=message):
        call_command("resend_events", *args)
    assert WebhookDelivery.objects.count() == 0


def test_a_claim_takes_at_most_its_share_of_one_endpoint_and_skips_busy_ones(merchant, make_endpoint):
    busy = make_endpoint("https://busy.example/hook")
    quiet = make_endpoint("https://quiet.example/hook", enabled_events=["charge.succeeded"])
    for _ in range(30):
        make_event(merchant, "payment_intent.succeeded")
    make_event(merchant, "charge.succeeded")
    events_fan_out(now=timezone.now())

    now = timezone.now()
    first = deliveries_claim(now=now, limit=20, per_endpoint=5)
    assert sorted(c.endpoint.id for c in first).count(busy.id) == 5
    assert [c.endpoint.id for c in first].count(quiet.id) == 1
    assert deliveries_claim(now=now, limit=20, per_endpoint=5, skip_endpoints=[busy.id]) == []
    # claimed rows are leased: not claimed again until the lease ends
    again = deliveries_claim(now=now, limit=100, per_endpoint=100)
    assert len(again) == 26 and not {c.id for c in again} & {c.id for c in first}
    later = deliveries_claim(now=now + timedelta(minutes=5), limit=100, per_endpoint=100)
    assert len(later) == 32  # 31 to busy ("*"), 1 to quiet


def test_a_dead_endpoints_backlog_never_stalls_the_claim_and_is_failed(merchant, make_endpoint):
    healthy = make_endpoint("https://healthy.example/hook")
    dead = make_endpoint("https://dead.example/hook")
    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(merchant=merchant, livemode=False, type="payment_intent.succeeded", object_id=f"pi_{n:08d}", sequence=1,
              data={"object": {"id": f"pi_{n:08d}"}}) for n in range(2000))
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint=dead, event=event, next_attempt_at=now - timedelta(hours=1)) for event in events)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(endpoint=healthy, event=event, next_attempt_at=now - timedelta(minutes=1))
        for event in events[:5])
    WebhookEndpoint.objects.filter(id=dead.id).update(status="disabled")

    claimed = deliveries_claim(now=now, limit=20, per_endpoint=32)

    assert sorted(c.endpoint.id for c in claimed) == [healthy.id] * 5
    assert WebhookDelivery.objects.filter(endpoint=dead).exclude(status="failed").count() == 0
    assert not WebhookDelivery.objects.filter(endpoint=dead, next_attempt_at__isnull=False).exists()
    assert WebhookAttempt.objects.count() == 0


def test_a_deleted_endpoints_due_rows_are_failed_and_not_sent(merchant, make_endpoint):
    healthy = make_endpoint("https://healthy.example/hook")
    gone = make_endpoint("https://gone.example/hook")
    make_event(merchant)
    events_fan_out(now=timezone.now())
    WebhookEndpoint.objects.filter(id=gone.id).update(deleted=True)

    claimed = deliveries_claim(now=timezone.now(), limit=10, per_endpoint=10)

    assert [c.endpoint.id for c in claimed] == [healthy.id]
    assert WebhookDelivery.objects.get(endpoint=gone).status == "failed"
