"""/v1/events: Stripe's event objects for the last 30 days, filtered by type, scoped to merchant and mode."""
from datetime import timedelta

import pytest
from django.utils import timezone

from merchants import services as merchant_services
from payments.events import event_record
from payments.models import Event, WebhookDelivery
from tests.conftest import FormClient
from tests.merchants.factories import MerchantFactory

pytestmark = pytest.mark.django_db


def client_for(key):
    client = FormClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def add_event(merchant, type="payment_intent.succeeded", *, livemode=False, obj="pi_x", created=None, **kwargs):
    event = event_record(merchant=merchant, livemode=livemode, type=type, obj_id=obj,
                         snapshot={"id": obj, "object": type.split(".")[0]}, **kwargs)
    if created is not None:
        Event.objects.filter(pk=event.pk).update(created=created)
        event.refresh_from_db()
    return event


def ids(response):
    assert response.status_code == 200, response.content
    return [e["id"] for e in response.json()["data"]]


def test_a_payment_intents_events_in_stripes_shape(api, networks, wallet):
    intent = api.post("/v1/payment_intents", {"amount": "1234", "currency": "usd"},
                      HTTP_IDEMPOTENCY_KEY="order-1").json()

    listed = api.get("/v1/events").json()
    assert listed["object"] == "list" and listed["url"] == "/v1/events" and listed["has_more"] is False
    requires_action, created = listed["data"]
    assert created["type"] == "payment_intent.created" and requires_action["type"] == "payment_intent.requires_action"
    assert set(created) == {"id", "object", "api_version", "created", "data", "livemode", "pending_webhooks",
                            "request", "type"}
    assert created["id"].startswith("evt_") and created["object"] == "event" and created["livemode"] is False
    assert created["data"]["object"]["id"] == intent["id"]
    assert requires_action["data"]["object"] == intent
    assert created["request"]["idempotency_key"] == "order-1" and created["request"]["id"].startswith("req_")
    assert created["pending_webhooks"] == 0 and isinstance(created["created"], int)
    assert api.get(f"/v1/events/{created['id']}").json() == created


def test_pending_webhooks_counts_the_deliveries_still_pending(api, merchant):
    event = add_event(merchant)
    endpoints = [
        merchant_services.webhook_endpoint_create(merchant=merchant, livemode=False, url="http://127.0.0.1:9/",
                                                  enabled_events=["*"])
        for _ in range(3)
    ]
    for endpoint, status in zip(endpoints, ["pending", "pending", "succeeded"]):
        WebhookDelivery.objects.create(endpoint=endpoint, event=event, status=status)

    assert api.get(f"/v1/events/{event.id}").json()["pending_webhooks"] == 2
    assert api.get("/v1/events").json()["data"][0]["pending_webhooks"] == 2

    assert ids(api.get("/v1/events?delivery_success=false")) == [event.id]
    assert ids(api.get("/v1/events?delivery_success=true")) == []
    WebhookDelivery.objects.update(status="succeeded")
    assert ids(api.get("/v1/events?delivery_success=true")) == [event.id]


def test_filter_by_type_wildcard_and_types(api, merchant):
    created = add_event(merchant, "payment_intent.created", obj="pi_1")
    succeeded = add_event(merchant, "payment_intent.succeeded", obj="pi_1")
    charge = add_event(merchant, "charge.succeeded", obj="ch_1")
    unmatched = add_event(merchant, "crypto.deposit.unmatched", obj="cdep_1")
    lookalike = add_event(merchant, "payment_intentxcreated", obj="pi_2")  # not a real type: the dot is literal

    assert ids(api.get("/v1/events?type=charge.succeeded")) == [charge.id]
    assert ids(api.get("/v1/events?type=payment_intent.*")) == [succeeded.id, created.id]
    assert ids(api.get("/v1/events?type=payment_intent.c*")) == [created.id]
    assert ids(api.get("/v1/events?type=*.succeeded")) == [charge.id, succeeded.id]
    assert ids(api.get("/v1/events?type=crypto.*")) == [unmatched.id]
    assert ids(api.get("/v1/events?type=*")) == [lookalike.id, unmatched.id, charge.id, succeeded.id, created.id]
    assert ids(api.get("/v1/events?type=payment_intent")) == []  # no implicit prefix match
    both = api.get("/v1/events?types[]=charge.succeeded&types[]=payment_intent.created")
    assert ids(both) == [charge.id, created.id]
    assert ids(api.get("/v1/events?types[0]=crypto.deposit.unmatched")) == [unmatched.id]


@pytest.mark.parametrize("query, param", [
    ("type=payment_intent.%25", "type"),
    ("type=PAYMENT(", "type"),
    ("types[]=payment_intent.*", "types[0]"),
    ("types[]=" + "&types[]=".join(f"t{i}.x" for i in range(21)), "types"),
    ("type=charge.succeeded&types[]=charge.succeeded", "types"),
    ("delivery_success=maybe", "delivery_success"),
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    ("created[gte]=abc", "created[gte]"),
    ("created[nope]=1", "created[nope]"),
    ("unknown=1", "unknown"),
])
def test_bad_filters_name_the_parameter(api, merchant, query, param):
    add_event(merchant)
    response = api.get(f"/v1/events?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_only_the_last_30_days(api, merchant):
    now = timezone.now()
    old = add_event(merchant, obj="pi_old", created=now - timedelta(days=31))
    recent = add_event(merchant, obj="pi_new", created=now - timedelta(days=29))

    assert ids(api.get("/v1/events")) == [recent.id]
    assert api.get(f"/v1/events/{old.id}").status_code == 404
    assert api.get(f"/v1/events/{recent.id}").status_code == 200


def test_created_filter_and_pagination(api, merchant):
    base = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    events = [add_event(merchant, obj=f"pi_{i}", created=base + timedelta(seconds=i)) for i in range(7)]
    newest_first = [e.id for e in reversed(events)]

    seen, after = [], None
    while True:
        page = api.get("/v1/events?limit=3" + (f"&starting_after={after}" if after else "")).json()
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == newest_first

    since = int((base + timedelta(seconds=4)).timestamp())
    assert ids(api.get(f"/v1/events?created[gte]={since}")) == newest_first[:3]
    assert ids(api.get(f"/v1/events?created[lt]={since}")) == newest_first[3:]
    assert ids(api.get(f"/v1/events?created={since}")) == [events[4].id]
    assert ids(api.get(f"/v1/events?limit=2&ending_before={events[2].id}")) == [events[4].id, events[3].id]


def test_other_merchants_and_the_other_mode_never_see_an_event(api, merchant, make_key):
    mine = add_event(merchant)
    live = add_event(merchant, livemode=True, obj="pi_live")
    theirs = add_event(MerchantFactory(), obj="pi_theirs")

    assert ids(api.get("/v1/events")) == [mine.id]
    for other in (live, theirs):
        assert api.get(f"/v1/events/{other.id}").status_code == 404
        assert api.get(f"/v1/events?starting_after={other.id}").status_code == 404
    live_client = client_for(make_key(merchant, livemode=True))
    assert ids(live_client.get("/v1/events")) == [live.id]
    assert live_client.get(f"/v1/events/{mine.id}").status_code == 404
    assert live_client.get(f"/v1/events/{live.id}").json()["livemode"] is True


def test_restricted_and_publishable_keys(api, merchant, make_key):
    event = add_event(merchant)
    reader = client_for(make_key(merchant, kind="restricted", permissions={"events": "read"}))
    other = client_for(make_key(merchant, kind="restricted", permissions={"payment_intents": "write"}))
    publishable = client_for(make_key(merchant, kind="publishable"))

    assert ids(reader.get("/v1/events")) == [event.id]
    assert other.get("/v1/events").status_code == 403
    assert publishable.get(f"/v1/events/{event.id}").status_code == 403
    assert reader.post("/v1/events", {}).status_code == 403
    assert api.post("/v1/events", {}).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_stripes_sdk_lists_and_retrieves_events(live_server, networks, wallet, merchant, make_key):
    import stripe

    sdk = stripe.StripeClient(make_key(merchant), base_addresses={"api": live_server.url}, max_network_retries=0)
    intents = [sdk.v1.payment_intents.create(params={"amount": 100 + i, "currency": "usd"}) for i in range(3)]
    sdk.v1.payment_intents.cancel(intents[0].id)

    events = list(sdk.v1.events.list(params={"limit": 2}).auto_paging_iter())
    assert len(events) == 7 and events[0].type == "payment_intent.canceled"
    assert events[0].data.object.id == intents[0].id and events[0].data.object.status == "canceled"
    assert events[0].data.previous_attributes.status == "requires_action"

    created = list(sdk.v1.events.list(params={"type": "payment_intent.created"}).auto_paging_iter())
    assert [e.data.object.id for e in created] == [i.id for i in reversed(intents)]
    grouped = sdk.v1.events.list(params={"types": ["payment_intent.canceled", "payment_intent.created"]})
    assert len(grouped.data) == 4

    fetched = sdk.v1.events.retrieve(events[0].id)
    assert fetched.id == events[0].id and fetched.type == "payment_intent.canceled" and fetched.pending_webhooks == 0
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.events.retrieve("evt_nope")
    assert exc.value.http_status == 404
