"""The portal's home: volume and count per day per network and token, conversion, median time to pay, what needs
attention and lagging networks, for the merchant and mode shown only; charts as SVG."""
import itertools
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from merchants import services as merchant_services
from payments import home
from payments.models import Charge, PaymentIntent, UnmatchedDeposit
from tests.otp import login_verified
from wallets.models import ChainCursor, DepositAddress, Network, Token, Transfer

_seq = itertools.count(1)
Status = PaymentIntent.Status


@pytest.fixture
def shop(networks):
    return merchant_services.merchant_create(email="shop@example.com", name="Shop", password="pw-0123456789")


@pytest.fixture
def page(shop):
    client = Client()
    login_verified(client, shop.user)
    return client


def _address(merchant):
    n = next(_seq)
    return DepositAddress.objects.create(index=10_000 + n, address=f"0x{n:040x}", merchant=merchant)


def intent(merchant, *, livemode=False, status=Status.REQUIRES_ACTION, created=None, amount_seen=0,
           paid=None, paid_after=timedelta(minutes=5)):
    """An intent created at `created`; `paid` = (network code, token currency, base units) adds its Charge (with
    its transfer) `paid_after` later."""
    n = next(_seq)
    created = created or timezone.now()
    pi = PaymentIntent.objects.create(merchant=merchant, livemode=livemode, status=status, amount=2000,
                                      currency="usd", client_secret=f"pi_secret_{n}", amount_seen=amount_seen,
                                      deposit_address=_address(merchant))
    PaymentIntent.objects.filter(pk=pi.pk).update(created=created)
    if paid:
        network = Network.objects.get(code=paid[0])
        token = Token.objects.get(network=network, currency=paid[1])
        transfer = Transfer.objects.create(
            network=network, token=token, tx_hash=f"0x{n:064x}", log_index=0, block_number=n, block_hash=f"0x{n:064x}",
            from_address="0x" + "1" * 40, to_address=pi.deposit_address.address, deposit_address=pi.deposit_address,
            amount_base_units=paid[2], finalized_at=created + paid_after)
        charge = Charge.objects.create(merchant=merchant, livemode=livemode, payment_intent=pi, transfer=transfer,
                                       amount=2000, currency="usd")
        Charge.objects.filter(pk=charge.pk).update(created=created + paid_after)
        PaymentIntent.objects.filter(pk=pi.pk).update(latest_charge=charge)
    return pi


def test_the_home_figures_are_right_for_the_merchant_and_mode_shown(shop, page):
    now = timezone.now()
    yesterday = now - timedelta(days=1)
    # Test mode: 3 paid (2 bsc-testnet usdt, 1 sepolia usdc), 1 partly paid, 1 processing, 1 expired
    intent(shop, status=Status.SUCCEEDED, created=yesterday, paid=("bsc-testnet", "usdt", 20 * 10**18),
           paid_after=timedelta(minutes=2))
    intent(shop, status=Status.SUCCEEDED, created=now, paid=("bsc-testnet", "usdt", 5 * 10**17),
           paid_after=timedelta(minutes=4))
    intent(shop, status=Status.SUCCEEDED, created=now - timedelta(minutes=30), paid=("sepolia", "usdc", 12_340_000),
           paid_after=timedelta(minutes=10))
    intent(shop, amount_seen=500)
    intent(shop, status=Status.PROCESSING)
    intent(shop, status=Status.CANCELED, created=yesterday)
    # Outside the period, another mode, another merchant: never counted
    intent(shop, status=Status.SUCCEEDED, created=now - timedelta(days=40), paid=("bsc-testnet", "usdt", 10**18))
    intent(shop, livemode=True, status=Status.SUCCEEDED, created=now, paid=("bsc", "usdt", 99 * 10**18))
    other = merchant_services.merchant_create(email="other@example.com", password="pw-0123456789")
    intent(other, status=Status.SUCCEEDED, created=now, paid=("bsc-testnet", "usdt", 77 * 10**18))
    UnmatchedDeposit.objects.create(
        merchant=shop, livemode=False, reason=UnmatchedDeposit.Reason.NO_OPEN_INTENT,
        transfer=Transfer.objects.create(
            network=Network.objects.get(code="bsc-testnet"), tx_hash="0x" + "e" * 64, log_index=1, block_number=1,
            block_hash="0x" + "e" * 64, from_address="0x" + "1" * 40, to_address="0x" + "2" * 40,
            deposit_address=_address(shop), amount_base_units=1))

    response = page.get("/portal/?days=30")

    assert response.status_code == 200
    ctx = response.context
    series = {(s.network, s.token): s for s in ctx["series"]}
    assert set(series) == {("bsc-testnet", "usdt"), ("sepolia", "usdc")}
    usdt = series[("bsc-testnet", "usdt")]
    assert (usdt.count, usdt.amount_base_units, usdt.amount) == (2, 205 * 10**17, "20.50")
    assert usdt.counts == {yesterday.date(): 1, now.date(): 1}
    assert (series[("sepolia", "usdc")].count, series[("sepolia", "usdc")].amount) == (1, "12.34")
    assert ctx["payments_count"] == 3
    assert (ctx["conversion"].created, ctx["conversion"].succeeded, ctx["conversion"].rate_percent) == (6, 3, "50.0 %")
    assert ctx["median_to_pay"] == "4 min 0 s"
    assert ctx["attention"] == home.Attention(partially_paid=1, processing=1, unmatched_deposits=1)
    body = response.content.decode()
    assert body.count("<rect") == 30 * 3  # payments per day + one chart per series, a bar per day
    assert "20.50 USDT" in body and "Test mode:" in body

    page.post("/portal/mode/", {"livemode": "1"})
    live = page.get("/portal/?days=7").context
    assert [(s.network, s.count, s.amount) for s in live["series"]] == [("bsc", 1, "99.00")]
    assert live["conversion"].created == 1 and live["attention"].partially_paid == 0


def test_a_bad_period_is_a_form_error_not_a_500(page):
    response = page.get("/portal/?days=abc")
    assert response.status_code == 400 and "days" in response.context["form"].errors


def test_a_lagging_network_the_merchant_accepts_shows_a_banner(shop, page, settings):
    network = Network.objects.get(code="bsc-testnet")
    ChainCursor.objects.create(network=network, block_number=100, head_number=100 + settings.GATEWAY_PORTAL_LAG_BLOCKS + 1)
    ChainCursor.objects.create(network=Network.objects.get(code="sepolia"), block_number=100, head_number=101)

    body = page.get("/portal/").content.decode()

    assert "BNB Smart Chain Testnet is behind" in body and "Sepolia is behind" not in body
    shop.enabled_networks = ["ethereum"]
    shop.save(update_fields=["enabled_networks"])
    assert "is behind" not in page.get("/portal/").content.decode()  # a network it does not accept


def test_the_period_figures_are_cached_per_merchant_mode_and_period(shop, page, settings):
    settings.GATEWAY_PORTAL_HOME_CACHE_SECONDS = 60
    intent(shop, status=Status.SUCCEEDED, paid=("bsc-testnet", "usdt", 10**18))
    assert page.get("/portal/?days=7").context["payments_count"] == 1

    intent(shop, status=Status.SUCCEEDED, paid=("bsc-testnet", "usdt", 10**18))

    assert page.get("/portal/?days=7").context["payments_count"] == 1  # within the minute: the cached figures
    assert page.get("/portal/?days=30").context["payments_count"] == 2  # another period: its own
    page.post("/portal/mode/", {"livemode": "1"})
    assert page.get("/portal/?days=7").context["payments_count"] == 0  # another mode: its own
