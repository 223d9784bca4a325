"""The sender signs with the endpoints' secrets, which are sealed at rest (merchants.secrets): decrypted in the
claim's synchronous code (never in the event loop), once per secret version and process, not once per delivery."""
from datetime import timedelta

import pytest
from django.utils import timezone

from merchants import secrets, services
from payments.events import event_record
from payments.webhooks.fanout import events_fan_out
from payments.webhooks.services import deliveries_claim

from .conftest import SECRET

pytestmark = pytest.mark.django_db


def test_a_claim_decrypts_each_endpoint_secret_once_for_all_its_deliveries(merchant, make_endpoint):
    endpoint = make_endpoint("http://127.0.0.1:9/ok")
    expected = (services.webhook_endpoint_secret_roll(endpoint=endpoint, grace=timedelta(hours=1)).secret, SECRET)
    for i in range(5):
        event_record(merchant=merchant, livemode=False, type="payment_intent.succeeded", obj_id=f"pi_{i}",
                     snapshot={"id": f"pi_{i}"})
    events_fan_out(now=timezone.now())
    secrets.secrets_cache_clear()  # a sender that has not seen this endpoint yet

    claimed = deliveries_claim(now=timezone.now(), limit=10, per_endpoint=10)

    assert len(claimed) == 5
    for delivery in claimed:  # plain strings on the snapshot: nothing left to decrypt when signing
        assert type(delivery.endpoint.__dict__["secret"]) is str
        assert (delivery.endpoint.secret, delivery.endpoint.previous_secret) == expected
    info = secrets.secret_open.cache_info()
    assert info.misses == 2 and info.hits == 8  # the current and the previous secret, once each
