"""Retrieving an intent with a publishable key and its client_secret returns Stripe's subset only (the fields its
API reference marks "retrievable with publishable key"): never the metadata, the charges, the return URL."""
import pytest
from django.test import Client

from payments.presenters import PUBLISHABLE_FIELDS

pytestmark = pytest.mark.django_db


def test_a_publishable_key_with_the_client_secret_sees_stripe_s_subset(api, ready, merchant, make_key):
    intent = api.post("/v1/payment_intents", {
        "amount": 1999, "currency": "usd", "metadata[order]": "A-1", "description": "Order A-1",
        "receipt_email": "buyer@example.com", "return_url": "https://shop.example/done",
    }).json()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_key(merchant, kind='publishable')}")

    response = client.get(f"/v1/payment_intents/{intent['id']}", {"client_secret": intent["client_secret"]})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(PUBLISHABLE_FIELDS)
    assert "metadata" not in body and "latest_charge" not in body and "return_url" not in body
    assert "amount_received" not in body and "payment_method_options" not in body
    assert {name: body[name] for name in body} == {name: intent[name] for name in PUBLISHABLE_FIELDS}
    assert body["next_action"]["crypto_display_details"]["deposit_addresses"]


def test_a_secret_key_still_sees_the_whole_intent(api, ready):
    intent = api.post("/v1/payment_intents", {"amount": 1999, "currency": "usd", "metadata[order]": "A-1"}).json()

    body = api.get(f"/v1/payment_intents/{intent['id']}").json()

    assert body["metadata"] == {"order": "A-1"} and set(PUBLISHABLE_FIELDS) < set(body)
