"""The NOTIFY that wakes `manage.py deliver_webhooks` (migration payments/0005): only events that an enabled, not
deleted endpoint of their merchant and mode subscribes to (their type or "*") notify; the others wake nobody.

Timing-free: after the events' commit the test sends a sentinel notification of its own on the same channel;
PostgreSQL delivers notifications in commit order, so whatever the events' commit notified arrives before it."""
import psycopg
import pytest
from django.db import connection

from payments.events import build_event
from payments.models import Event
from payments.webhooks.delivery import NOTIFY_CHANNEL

from tests.merchants.factories import MerchantFactory

from .test_delivery import make_event

pytestmark = pytest.mark.django_db(transaction=True)

SENTINEL = "sentinel"


@pytest.fixture
def listener():
    params = connection.settings_dict
    with psycopg.connect(dbname=params["NAME"], user=params["USER"] or None, host=params["HOST"] or None,
                         port=params["PORT"] or None, autocommit=True) as conn:
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

        def wakes() -> int:
            """Notifications received before our own sentinel (sent now): those of the commits made so far."""
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, SENTINEL])
            payloads = []
            for notify in conn.notifies(timeout=60):
                if notify.payload == SENTINEL:
                    return len(payloads)
                payloads.append(notify.payload)
            raise AssertionError(f"the sentinel never came ({payloads})")

        yield wakes


@pytest.mark.parametrize("endpoint, wakes", [
    (None, 0),
    ({"enabled_events": ["*"]}, 1),
    ({"enabled_events": ["payment_intent.succeeded"]}, 1),
    ({"enabled_events": ["charge.succeeded", "payment_intent.succeeded"]}, 1),
    ({"enabled_events": ["payment_intent.canceled"]}, 0),
    ({"enabled_events": ["*"], "livemode": True}, 0),
    ({"enabled_events": ["*"], "status": "disabled"}, 0),
    ({"enabled_events": ["*"], "deleted": True}, 0),
    ({"enabled_events": ["*"], "other_merchant": True}, 0),
], ids=["no endpoint", "star", "its type", "among others", "another type", "live mode", "disabled", "deleted",
        "another merchant's"])
def test_an_event_wakes_the_sender_only_when_an_endpoint_subscribes_to_it(merchant, make_endpoint, listener,
                                                                         endpoint, wakes):
    # Given the merchant's endpoints as described
    if endpoint is not None:
        endpoint = dict(endpoint)
        owner = MerchantFactory() if endpoint.pop("other_merchant", False) else merchant
        make_endpoint("http://127.0.0.1:9/hook", merchant_=owner, **endpoint)
    assert listener() == 0
    # when a test-mode payment_intent.succeeded event is committed
    make_event(merchant, "payment_intent.succeeded")
    # then the sender is woken once, or not at all
    assert listener() == wakes


def test_a_statement_of_many_events_wakes_the_sender_once_if_any_of_them_is_wanted(merchant, make_endpoint, listener):
    # Given an endpoint that wants only requires_action
    make_endpoint("http://127.0.0.1:9/hook", enabled_events=["payment_intent.requires_action"])

    def insert(*types):  # one INSERT statement, as payment_intent_create writes its two events
        Event.objects.bulk_create([
            build_event(merchant=merchant, livemode=False, type=t, obj_id=f"pi_{n:08d}", sequence=1,
                        snapshot={"id": f"pi_{n:08d}", "object": "payment_intent"})
            for n, t in enumerate(types, start=Event.objects.count() + 1)])

    # when a statement inserts only events it does not want, then one that also inserts one it wants
    insert("payment_intent.created", "payment_intent.canceled")
    assert listener() == 0
    insert("payment_intent.created", "payment_intent.requires_action", "payment_intent.requires_action")
    # then only the second statement wakes the sender, once
    assert listener() == 1
