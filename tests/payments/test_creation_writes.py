"""Creation writes the deposit address, the intent, its options and its events in one statement (gateway.db): what it
wrote is exactly what the ORM reads back, and the JSON built once for the events and the response is the JSON of the
stored rows."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.exceptions import ValidationError

from payments.models import Event, PaymentIntent, PaymentOption
from payments.presenters import payment_intent_json
from payments.serializers import PaymentIntentCreateSerializer
from payments.services import PaymentIntentInput, RequestContext, payment_intent_create
from wallets.models import DepositAddress, Network
from wallets.networks import clear_network_cache

pytestmark = pytest.mark.usefixtures("ready")


def create(merchant, **kwargs):
    data = PaymentIntentInput(amount=1234, currency="usd", metadata={"order_id": "A-1"}, **kwargs)
    return payment_intent_create(merchant=merchant, livemode=False, data=data,
                                 ctx=RequestContext(request_id="req_1", idempotency_key="k-1"))


def test_the_stored_rows_present_as_the_response(merchant):
    intent = create(merchant)
    shown = payment_intent_json(intent)

    stored = PaymentIntent.objects.get(pk=intent.pk)
    assert payment_intent_json(stored) == shown
    assert stored.created == intent.created and stored.updated == intent.updated
    assert stored.deposit_address_id == intent.deposit_address.pk
    assert stored.idempotency_key == "k-1" and stored.amount_seen == 0

    options = list(PaymentOption.objects.filter(payment_intent=stored).order_by("pk"))
    assert [(o.pk, o.token_id, o.amount_base_units) for o in options] == [
        (o.pk, o.token_id, o.amount_base_units) for o in sorted(intent.options.all(), key=lambda o: o.pk)
    ]
    assert all(isinstance(o.amount_base_units, int) for o in options)

    events = list(Event.objects.filter(object_id=intent.pk).order_by("sequence"))
    assert [(e.type, e.sequence, e.request_id, e.idempotency_key) for e in events] == [
        ("payment_intent.created", 1, "req_1", "k-1"), ("payment_intent.requires_action", 2, "req_1", "k-1"),
    ]
    assert events[1].data == {"object": shown}
    assert events[0].data["object"] == {**shown, "status": "requires_confirmation", "next_action": None}


def test_an_unconfirmed_intent_has_one_event_and_no_options(merchant):
    intent = create(merchant, confirm=False)

    assert PaymentOption.objects.filter(payment_intent_id=intent.pk).count() == 0
    assert list(Event.objects.filter(object_id=intent.pk).values_list("type", flat=True)) == [
        "payment_intent.created"
    ]
    assert payment_intent_json(PaymentIntent.objects.get(pk=intent.pk)) == payment_intent_json(intent)


def test_the_remembered_json_follows_changes_to_the_instance(merchant):
    intent = create(merchant)
    first = payment_intent_json(intent)
    assert payment_intent_json(intent) is first

    intent.metadata = {"order_id": "A-2"}
    assert payment_intent_json(intent)["metadata"] == {"order_id": "A-2"}
    intent.status = PaymentIntent.Status.CANCELED
    assert payment_intent_json(intent)["status"] == "canceled" and payment_intent_json(intent)["next_action"] is None
    assert payment_intent_json(intent, include_client_secret=False)["client_secret"] is None


def test_a_confirmed_creation_is_two_round_trips_and_writes_the_address_row(merchant, settings):
    settings.GATEWAY_NETWORK_CACHE_SECONDS = 60
    create(merchant)  # the networks and tokens are read once in a while, not per request
    with CaptureQueriesContext(connection) as queries:
        intent = create(merchant)
    statements = [q["sql"] for q in queries.captured_queries]
    # The draw of the address (index, key, xpub), then every row in one statement; nothing else.
    assert len(statements) == 2, [s[:80] for s in statements]

    address = DepositAddress.objects.get(pk=intent.deposit_address.pk)
    assert (address.index, address.address, address.merchant_id) == (
        intent.deposit_address.index, intent.deposit_address.address, merchant.pk,
    )
    assert not intent.deposit_address._state.adding
    # A later address (made the other way, by confirm) gets a key of its own: the sequence is shared.
    later = create(merchant, confirm=False)
    from payments.services import payment_intent_confirm
    later = payment_intent_confirm(intent=later)
    assert later.deposit_address.pk > address.pk and later.deposit_address.index > address.index


def test_reused_serializer_fields_read_each_instances_own_context(merchant):
    """The create serializer's fields are built once (ReusedFieldsMixin): each new instance must still validate with
    its own data and context; networks depend on the mode, read through the nested fields' root."""
    nested = {"amount": 100, "currency": "usd",
              "payment_method_options": {"crypto": {"deposit_options": {"networks": ["bsc"]}}}}
    Network.objects.filter(livemode=True, api_name="bsc").update(is_active=False)
    clear_network_cache()
    live = PaymentIntentCreateSerializer(data=nested, context={"livemode": True})
    test = PaymentIntentCreateSerializer(data=nested, context={"livemode": False})
    assert test.fields is live.fields  # built once
    # Validated in turn, each with its own context (the fields were last taken by `test`).
    with pytest.raises(ValidationError) as refused:
        live.is_valid(raise_exception=True)
    assert "live mode" in str(refused.value.detail)
    assert test.is_valid(), test.errors
    assert test.to_input().networks == ["bsc"]

    bad = PaymentIntentCreateSerializer(data={"amount": "x", "currency": "usd"}, context={"livemode": False})
    assert not bad.is_valid() and set(bad.errors) == {"amount"}
    assert test.validated_data["amount"] == 100 and set(live.errors) == {"payment_method_options"}
