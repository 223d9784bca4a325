"""Risk controls on creation (issue 13, item 4): a frozen account takes no payment (API refused with a Stripe-shaped
error, confirmation refused, checkout closed; reads go on) and per-merchant limits per payment and per day."""
import threading

import pytest
from django.core.management import call_command
from django.db import connections

from gateway.errors import DomainError
from merchants.services import merchant_freeze, merchant_unfreeze
from payments import services
from payments.models import Event, PaymentDailyVolume, PaymentIntent
from payments.serializers import PaymentIntentCreateSerializer

pytestmark = pytest.mark.usefixtures("ready")


def create(api, amount=1999, currency="usd", **params):
    return api.post("/v1/payment_intents", {"amount": amount, "currency": currency, **params})


def limited(merchant, **limits):
    for name, value in limits.items():
        setattr(merchant, name, value)
    merchant.save(update_fields=list(limits))


def refusal(response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error.get("param")


def counts():
    return PaymentIntent.objects.count(), Event.objects.count(), list(
        PaymentDailyVolume.objects.values_list("amount_minor", flat=True))


@pytest.mark.django_db
def test_a_frozen_account_cannot_create_or_confirm_but_still_reads(api, merchant):
    # Given an intent created, one left to confirm, then the account frozen
    existing = create(api).json()
    unconfirmed = create(api, confirm="false").json()
    assert unconfirmed["status"] == "requires_confirmation"
    merchant_freeze(merchant=merchant, reason="chargeback review")
    before = counts()
    # when it creates an intent: refused with Stripe's error shape, nothing written
    response = create(api)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "account_frozen"
    assert "frozen" in error["message"]
    assert counts() == before
    # confirming is refused too
    response = api.post(f"/v1/payment_intents/{unconfirmed['id']}/confirm")
    assert response.status_code == 403 and response.json()["error"]["code"] == "account_frozen"
    assert PaymentIntent.objects.get(pk=unconfirmed["id"]).status == "requires_confirmation"
    # reads go on
    assert api.get(f"/v1/payment_intents/{existing['id']}").status_code == 200
    # and unfrozen, it takes payments again
    merchant_unfreeze(merchant=merchant)
    assert create(api).status_code == 200


@pytest.mark.django_db
def test_the_checkout_of_a_frozen_account_says_the_shop_cannot_take_payments(api, client, merchant):
    intent = create(api).json()
    page = client.get(f"/pay/{intent['client_secret']}").content.decode()
    address = intent["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]
    assert address.lower() in page.lower()
    # Given the account frozen
    merchant_freeze(merchant=merchant, reason="chargeback review")
    # then the page says so, and shows no address to pay
    page = client.get(f"/pay/{intent['client_secret']}").content.decode()
    assert "This shop cannot take payments at the moment" in page
    assert address.lower() not in page.lower()
    assert client.get(f"/pay/{intent['client_secret']}/status").json()["status"] == "unavailable"


@pytest.mark.django_db
def test_freeze_needs_a_reason_and_is_refused_twice_and_the_command_does_both(merchant):
    with pytest.raises(DomainError):
        merchant_freeze(merchant=merchant, reason="  ")
    call_command("merchant_freeze", "--merchant", merchant.email, "--reason", "KYC expired")
    merchant.refresh_from_db()
    assert merchant.is_frozen and merchant.frozen_reason == "KYC expired"
    with pytest.raises(DomainError):
        merchant_freeze(merchant=merchant, reason="again")
    call_command("merchant_freeze", "--merchant", merchant.pk, "--unfreeze")
    merchant.refresh_from_db()
    assert not merchant.is_frozen and merchant.frozen_reason == ""


@pytest.mark.django_db
def test_the_limit_per_payment_and_its_currency(api, merchant):
    # Given at most $50.00 per payment
    limited(merchant, limit_per_payment_minor=5000)
    assert create(api, amount=5000).status_code == 200
    before = counts()
    # when an intent asks for more: refused, naming the field, nothing written
    response = create(api, amount=5001)
    assert refusal(response) == (400, "amount_too_large", "amount") and "5000" in response.json()["error"]["message"]
    # and another currency than the limits' is refused (a limit a change of currency escapes is no limit)
    limited(merchant, limit_currency="eur")
    assert refusal(create(api, amount=100)) == (400, "currency_not_allowed", "currency")
    assert counts() == before


@pytest.mark.django_db
def test_the_daily_limit_adds_up_the_days_creations_and_a_refusal_adds_nothing(api, merchant):
    # Given at most $30.00 a day
    limited(merchant, limit_per_day_minor=3000)
    assert create(api, amount=2000).status_code == 200
    before = counts()
    # when the next one would go over: refused, nothing written, the running total unchanged
    assert refusal(create(api, amount=1500)) == (400, "daily_limit_exceeded", "amount")
    assert counts() == before == (before[0], before[1], [2000])
    # one that fits is taken (also with an Idempotency-Key, whose transaction holds the increment)
    response = api.post("/v1/payment_intents", {"amount": 1000, "currency": "usd"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 200
    assert list(PaymentDailyVolume.objects.values_list("amount_minor", flat=True)) == [3000]


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_never_pass_the_daily_limit_together(merchant):
    # Given at most 5 x 1000 a day, and 12 threads creating 1000 each at once
    limited(merchant, limit_per_day_minor=5000)
    serializer = PaymentIntentCreateSerializer(data={"amount": 1000, "currency": "usd"}, context={"livemode": False})
    assert serializer.is_valid(), serializer.errors
    data = serializer.to_input()
    barrier = threading.Barrier(12)
    outcomes = []

    def worker():
        try:
            barrier.wait(10)
            services.payment_intent_create(merchant=merchant, livemode=False, data=data)
            outcomes.append("created")
        except DomainError as exc:
            outcomes.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # then exactly five are created, the others refused, and the running total is the limit
    assert sorted(outcomes) == ["created"] * 5 + ["daily_limit_exceeded"] * 7
    assert PaymentIntent.objects.filter(merchant=merchant).count() == 5
    assert list(PaymentDailyVolume.objects.values_list("amount_minor", flat=True)) == [5000]
