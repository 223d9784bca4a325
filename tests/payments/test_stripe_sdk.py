"""Stripe's official Python SDK, unchanged, against the gateway on a live server."""
import time

import pytest
import requests
import stripe

from payments.models import PaymentIntent
from tests.merchants.factories import MerchantFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ready")]


@pytest.fixture
def sdk(live_server, secret_key):
    return stripe.StripeClient(secret_key, base_addresses={"api": live_server.url}, max_network_retries=0)


def create(sdk, **params):
    return sdk.v1.payment_intents.create(params={"amount": 1234, "currency": "usd", **params})


def test_create_retrieve_update_cancel(sdk):
    intent = create(
        sdk, metadata={"order_id": "A-1"}, description="Order A-1", payment_method_types=["crypto"],
        payment_method_data={"type": "crypto"},
        payment_method_options={"crypto": {"mode": "deposit", "deposit_options": {"networks": ["bsc"]}}},
    )
    assert intent.id.startswith("pi_") and intent.status == "requires_action"
    assert intent.metadata["order_id"] == "A-1"
    bsc = intent.next_action.crypto_display_details.deposit_addresses["bsc"]
    assert bsc.supported_tokens[0].amount == "12340000000000000000"

    fetched = sdk.v1.payment_intents.retrieve(intent.id)
    assert fetched.id == intent.id and fetched.client_secret == intent.client_secret

    updated = sdk.v1.payment_intents.update(intent.id, params={"metadata": {"order_id": "", "step": "2"}})
    assert updated.metadata.to_dict() == {"step": "2"}

    canceled = sdk.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "requested_by_customer"})
    assert canceled.status == "canceled" and canceled.cancellation_reason == "requested_by_customer"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.payment_intents.cancel(intent.id)
    assert exc.value.code == "payment_intent_unexpected_state"


def test_auto_pagination_across_pages_and_created_filters(sdk):
    ids = [create(sdk).id for _ in range(7)]
    created = {i.id: i.created for i in PaymentIntent.objects.all()}

    seen = [pi.id for pi in sdk.v1.payment_intents.list(params={"limit": 3}).auto_paging_iter()]
    assert seen == ids[::-1]

    newest = max(int(c.timestamp()) for c in created.values())
    recent = list(sdk.v1.payment_intents.list(params={"limit": 2, "created": {"gte": newest}}).auto_paging_iter())
    assert recent and all(pi.created >= newest for pi in recent)
    assert list(sdk.v1.payment_intents.list(params={"created": {"lt": newest - 3600}}).auto_paging_iter()) == []


@pytest.mark.parametrize("params, param, code", [
    ({"amount": 0}, "amount", "parameter_invalid"),
    ({"amount": -1}, "amount", "parameter_invalid"),
    ({"amount": "12.5"}, "amount", "parameter_invalid"),
    ({"amount": "abc"}, "amount", "parameter_invalid"),
    ({"amount": 10**30}, "amount", "parameter_invalid"),
    ({"currency": "zzz"}, "currency", "parameter_invalid"),
    ({"payment_method_options": {"crypto": {"deposit_options": {"networks": ["solana"]}}}},
     "payment_method_options[crypto][deposit_options][networks]", "parameter_invalid"),
    ({"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata", "parameter_invalid"),
    ({"metadata": {"k" * 41: "v"}}, "metadata[" + "k" * 41 + "]", "parameter_invalid"),
    ({"metadata": {"k": "v" * 501}}, "metadata[k]", "parameter_invalid"),
    ({"unknown_thing": "x"}, "unknown_thing", "parameter_unknown"),
])
def test_errors_raise_the_sdks_exception_with_param_and_code(sdk, params, param, code):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        create(sdk, **params)
    assert exc.value.param == param and exc.value.code == code
    assert exc.value.http_status == 400
    assert exc.value.request_id and exc.value.request_id.startswith("req_")
    assert PaymentIntent.objects.count() == 0


def test_broken_brackets_in_a_form_body_name_the_param(live_server, secret_key):
    # The SDK always encodes brackets correctly, so this body is sent as raw bytes.
    response = requests.post(
        f"{live_server.url}/v1/payment_intents", data="amount=1234&currency=usd&metadata[order_id=A-1",
        headers={"Authorization": f"Bearer {secret_key}", "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 400 and response.headers["Request-Id"].startswith("req_")
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "parameter_invalid"
    assert error["param"] == "metadata[order_id" and "metadata[order_id" in error["message"]
    assert PaymentIntent.objects.count() == 0


@pytest.mark.parametrize("params, param, code", [
    ({"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata", "parameter_invalid"),
    ({"metadata": {"k" * 41: "v"}}, "metadata[" + "k" * 41 + "]", "parameter_invalid"),
    ({"metadata": {"k": "v" * 501}}, "metadata[k]", "parameter_invalid"),
    ({"unknown_thing": "x"}, "unknown_thing", "parameter_unknown"),
])
def test_update_errors_raise_the_sdks_exception_and_change_nothing(sdk, params, param, code):
    intent = create(sdk, metadata={"order_id": "A-1"})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.payment_intents.update(intent.id, params=params)
    assert exc.value.http_status == 400 and exc.value.param == param and exc.value.code == code
    assert PaymentIntent.objects.get(pk=intent.id).metadata == {"order_id": "A-1"}


def test_cancel_errors_raise_the_sdks_exception_and_change_nothing(sdk):
    intent = create(sdk)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "bored"})
    assert exc.value.http_status == 400
    assert exc.value.param == "cancellation_reason" and exc.value.code == "parameter_invalid"
    assert PaymentIntent.objects.get(pk=intent.id).status == "requires_action"

    sdk.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "duplicate"})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "fraudulent"})
    assert exc.value.http_status == 400 and exc.value.code == "payment_intent_unexpected_state"
    assert PaymentIntent.objects.get(pk=intent.id).cancellation_reason == "duplicate"


def test_missing_required_param(sdk):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.payment_intents.create(params={"currency": "usd"})
    assert exc.value.param == "amount" and exc.value.code == "parameter_missing"


def test_not_found_and_bad_keys(sdk, live_server):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.payment_intents.retrieve("pi_doesnotexist")
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"

    bad = stripe.StripeClient("sk_test_" + "0" * 40, base_addresses={"api": live_server.url})
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.payment_intents.list()


def test_other_merchants_and_other_modes_get_404(sdk, live_server, make_key):
    intent = create(sdk)
    other = stripe.StripeClient(make_key(MerchantFactory()), base_addresses={"api": live_server.url})
    live = stripe.StripeClient(
        make_key(PaymentIntent.objects.get(pk=intent.id).merchant, livemode=True), base_addresses={"api": live_server.url}
    )
    for client in (other, live):
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.payment_intents.retrieve(intent.id)
        assert exc.value.http_status == 404
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.payment_intents.update(intent.id, params={"metadata": {"order_id": "stolen"}})
        assert exc.value.http_status == 404 and exc.value.code == "resource_missing" and exc.value.param == "intent"
        with pytest.raises(stripe.InvalidRequestError) as exc:
            client.v1.payment_intents.cancel(intent.id, params={"cancellation_reason": "fraudulent"})
        assert exc.value.http_status == 404 and exc.value.code == "resource_missing" and exc.value.param == "intent"
    row = PaymentIntent.objects.get(pk=intent.id)
    assert row.metadata == {} and row.status == "requires_action" and row.cancellation_reason == ""


def test_publishable_key_cannot_create(live_server, merchant, make_key):
    client = stripe.StripeClient(make_key(merchant, kind="publishable"), base_addresses={"api": live_server.url})
    with pytest.raises(stripe.PermissionError):
        create(client)


def test_idempotent_retry_returns_the_same_intent_and_a_different_body_is_refused(sdk):
    first = sdk.v1.payment_intents.create(
        params={"amount": 1234, "currency": "usd"}, options={"idempotency_key": "order-42"}
    )
    again = sdk.v1.payment_intents.create(
        params={"amount": 1234, "currency": "usd"}, options={"idempotency_key": "order-42"}
    )
    assert again.id == first.id
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.payment_intents.create(params={"amount": 999, "currency": "usd"}, options={"idempotency_key": "order-42"})
    assert PaymentIntent.objects.count() == 1


def test_expired_intents_are_canceled_by_the_beat_task(sdk):
    from payments.tasks import expire_payment_intents

    intent = create(sdk)
    PaymentIntent.objects.filter(pk=intent.id).update(expires_at=PaymentIntent.objects.get(pk=intent.id).created)
    time.sleep(0.01)

    assert expire_payment_intents() == 1
    assert expire_payment_intents() == 0
    fetched = sdk.v1.payment_intents.retrieve(intent.id)
    assert fetched.status == "canceled" and fetched.cancellation_reason == "expired"
