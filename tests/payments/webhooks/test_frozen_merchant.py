"""A frozen merchant still gets its webhooks: freezing stops new payments, never the news of the old ones."""
import pytest

from merchants.services import merchant_freeze
from payments.events import event_record
from payments.webhooks.delivery import deliver

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_frozen_merchants_events_are_still_delivered(merchant, receiver, make_endpoint):
    # Given a merchant with an endpoint, frozen
    make_endpoint(receiver.on("/frozen"))
    merchant_freeze(merchant=merchant, reason="chargeback review")
    # when an event of one of its intents happens (funds arriving for an intent created before the freeze)
    event = event_record(merchant=merchant, livemode=False, type="payment_intent.succeeded", obj_id="pi_frozen1",
                         snapshot={"id": "pi_frozen1", "object": "payment_intent", "amount": 1999})
    deliver(until_idle=True, duration=20)
    # then it is delivered
    [got] = receiver.at("/frozen")
    assert event.id.encode() in got.body
