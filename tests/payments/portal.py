"""Helpers of the portal's payments and developer page tests: merchants with a verified portal session, and rows
written directly (intents, charges with their on-chain transfers, events, deliveries), so the pages are tested
without a chain."""
import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from gateway.ids import random_token
from merchants import services as merchant_services
from payments.models import Charge, Event, PaymentIntent, UnmatchedDeposit, WebhookAttempt, WebhookDelivery
from tests.otp import login_verified
from wallets.models import DepositAddress, Network, Token, Transfer

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)


def portal_merchant(email: str, client=None, *, name: str = ""):
    """A merchant with a portal login; when `client` is given, logged in with a session verified by TOTP."""
    merchant = merchant_services.merchant_create(email=email, name=name, password=PASSWORD)
    if client is not None:
        login_verified(client, merchant.user)
    return merchant


@pytest.fixture
def shop(db, client):
    """The merchant whose portal session `client` holds (test mode)."""
    return portal_merchant("shop@example.com", client, name="Shop")


@pytest.fixture
def other(db):
    """Another merchant, whose rows `shop` must never see nor touch."""
    return portal_merchant("other@example.com")


def make_intent(merchant, *, livemode=False, amount=1999, status=PaymentIntent.Status.REQUIRES_ACTION,
                created=None, address: bool = False, **fields) -> PaymentIntent:
    intent = PaymentIntent(merchant=merchant, livemode=livemode, status=status, amount=amount, currency="usd",
                           networks=["bsc"], **fields)
    intent.client_secret = f"{intent.id}_secret_{random_token(24)}"
    if address:
        n = next(_seq) + 10_000_000
        intent.deposit_address = DepositAddress.objects.create(
            index=n, address="0x" + f"{n:040x}", merchant=merchant)
    intent.save(force_insert=True)
    if created is not None:
        PaymentIntent.objects.filter(pk=intent.pk).update(created=created)
        intent.created = created
    return intent


def make_intents(merchant, count: int, *, livemode=False, start=None, step=timedelta(minutes=1)) -> list:
    """`count` intents, one a `step` apart from `start` (oldest first); returned newest first."""
    start = start or timezone.now() - step * (count + 1)
    return [make_intent(merchant, livemode=livemode, created=start + step * i) for i in range(count)][::-1]


def network(code: str = "bsc-testnet") -> Network:
    return Network.objects.get(code=code)


def transfer(intent, *, code: str = "bsc-testnet", currency: str = "usdt", amount_base_units: int = 10 ** 18):
    net = network(code)
    n = next(_seq)
    return Transfer.objects.create(
        network=net, token=Token.objects.get(network=net, currency=currency), tx_hash="0x" + f"{n:064x}",
        log_index=0, block_number=100 + n, block_hash="0x" + f"{n + 1:064x}", from_address="0x" + "ab" * 20,
        to_address=intent.deposit_address.address, deposit_address=intent.deposit_address,
        amount_base_units=amount_base_units, finalized_at=timezone.now(),
    )


def make_charge(intent, **kwargs) -> Charge:
    charge = Charge.objects.create(merchant=intent.merchant, livemode=intent.livemode, payment_intent=intent,
                                   transfer=transfer(intent, **kwargs), amount=intent.amount, currency="usd")
    PaymentIntent.objects.filter(pk=intent.pk).update(latest_charge=charge, status=PaymentIntent.Status.SUCCEEDED,
                                                      amount_received=intent.amount)
    return charge


def make_unmatched(intent, **kwargs) -> UnmatchedDeposit:
    return UnmatchedDeposit.objects.create(merchant=intent.merchant, livemode=intent.livemode, payment_intent=intent,
                                           transfer=transfer(intent, **kwargs),
                                           reason=UnmatchedDeposit.Reason.INTENT_CLOSED)


def make_event(merchant, *, livemode=False, type="payment_intent.created", object_id="pi_x", data=None,
               sequence=None) -> Event:
    return Event.objects.create(merchant=merchant, livemode=livemode, type=type, object_id=object_id,
                                sequence=sequence or next(_seq), data=data or {"object": {"id": object_id}},
                                fanned_out_at=timezone.now())


def make_delivery(endpoint, event, *, status_code=None, body="", status=WebhookDelivery.Status.FAILED):
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event=event, status=status, attempts=1,
                                              last_attempt_at=timezone.now())
    WebhookAttempt.objects.create(delivery=delivery, started_at=timezone.now(), duration_ms=12,
                                  status_code=status_code, response_body=body)
    return delivery
