"""Payout addresses in the portal: added and removed with a fresh TOTP code, checked, emailed, recorded; usable only
after the cooling-off period; automatic payouts on the merchant's schedule."""
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from settlements.models import Payout, PayoutAddress, PayoutAddressEvent, PayoutSchedule
from settlements.payouts import payouts_run_automatic
from tests.otp import login_verified, totp_code
from tests.settlements.conftest import ONE_USDT, intent_for, owed, token
from tests.settlements.payout_fixtures import RECIPIENT, funded, usable_address
from wallets.outgoing.models import SendingAddress

pytestmark = pytest.mark.usefixtures("ledger_ready")
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example


@pytest.fixture
def portal(merchant, django_user_model):
    user = django_user_model.objects.create_user(username=merchant.email, email=merchant.email, password="pw-1234567")
    merchant.user = user
    merchant.save(update_fields=["user"])
    client = Client()
    device = login_verified(client, user)
    return client, device


def add(client, device, address, *, code=None):
    return client.post("/portal/payout-addresses/", {"token": str(token().id), "address": address,
                                                     "otp_token": code if code is not None else totp_code(device)})


def test_an_address_is_added_with_a_fresh_code_emailed_recorded_and_usable_after_the_cooling_off(
        portal, merchant, django_capture_on_commit_callbacks):
    client, device = portal
    with django_capture_on_commit_callbacks(execute=True):
        response = add(client, device, CHECKSUMMED)
    assert response.status_code == 302
    row = PayoutAddress.objects.get(merchant=merchant)
    assert row.address == CHECKSUMMED.lower() and row.livemode is False
    assert timedelta(hours=23, minutes=59) < row.usable_after - timezone.now() <= timedelta(hours=24)
    assert PayoutAddressEvent.objects.get(payout_address=row).action == "added"
    assert len(mail.outbox) == 1 and merchant.email in mail.outbox[0].to and row.address in mail.outbox[0].body
    page = client.get("/portal/payout-addresses/").content.decode()
    assert row.address in page and "<title>Payout addresses · " in page and page.count("<h2>Automatic payouts</h2>") == 1

    # removal asks for a code too; a wrong one changes nothing
    assert client.post(f"/portal/payout-addresses/{row.id}/remove", {"otp_token": "000000"}).status_code == 400
    assert PayoutAddress.objects.get(pk=row.pk).removed_at is None
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/portal/payout-addresses/{row.id}/remove",
                           {"otp_token": totp_code(device)}).status_code == 302
    assert len(mail.outbox) == 2 and "removed" in mail.outbox[1].subject
    assert PayoutAddress.objects.get(pk=row.pk).removed_at is not None
    assert list(PayoutAddressEvent.objects.filter(payout_address=row).order_by("id").values_list(
        "action", flat=True)) == ["added", "removed"]


@pytest.mark.parametrize("address, says", [
    ("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "checksum"),  # one letter of the valid one upper-cased
    ("0x" + "0" * 40, "zero address"),
    ("0x1234", "40 hexadecimal"),
])
def test_bad_addresses_are_refused_and_nothing_is_written(portal, address, says):
    client, device = portal
    response = add(client, device, address)
    assert response.status_code == 400 and says in response.content.decode()
    assert not PayoutAddress.objects.exists() and not PayoutAddressEvent.objects.exists() and not mail.outbox


def test_our_own_addresses_and_a_missing_code_are_refused(portal, merchant, networks):
    client, device = portal
    deposit = intent_for(merchant).deposit_address.address
    assert "deposit address" in add(client, device, deposit).content.decode()
    hot = SendingAddress.objects.create(network=token().network, address="0x" + "ab" * 20, key_ref="x", next_nonce=0)
    assert "own wallets" in add(client, device, hot.address).content.decode()
    assert add(client, device, RECIPIENT, code="").status_code == 400
    assert add(client, device, RECIPIENT, code="123456").status_code == 400
    assert not PayoutAddress.objects.exists()


def test_another_merchants_address_cannot_be_removed(portal, merchant):
    from tests.merchants.factories import MerchantFactory

    client, device = portal
    theirs = usable_address(MerchantFactory())
    response = client.post(f"/portal/payout-addresses/{theirs.id}/remove", {"otp_token": totp_code(device)})
    assert response.status_code == 404 and PayoutAddress.objects.get(pk=theirs.pk).removed_at is None


def test_a_daily_schedule_pays_out_the_available_balance_once_a_day_above_its_minimum(merchant):
    funded(merchant, 10 * ONE_USDT + 7)  # 7 base units of dust stay behind
    usable_address(merchant)
    PayoutSchedule.objects.create(merchant=merchant, interval="daily", minimum_amount=2000)
    assert payouts_run_automatic() == []  # below the minimum

    PayoutSchedule.objects.filter(merchant=merchant).update(minimum_amount=500, last_run_at=None)
    now = timezone.now()
    created = payouts_run_automatic(now=now)
    assert [(p.amount, p.automatic, p.status) for p in created] == [(1000, True, "pending")]
    assert owed(merchant)["available"] == 7
    assert payouts_run_automatic(now=now + timedelta(hours=1)) == []  # once a day

    call_command("payouts", "run")  # the ops command runs the same (and advances payouts)
    assert Payout.objects.count() == 1


def test_the_merchant_sets_its_automatic_payouts_in_the_portal_with_bounds(portal, merchant):
    client, _device = portal
    response = client.post("/portal/payout-addresses/schedule",
                           {"interval": "weekly", "weekly_anchor": "4", "minimum_amount": "5000"})
    assert response.status_code == 302
    schedule = PayoutSchedule.objects.get(merchant=merchant)
    assert (schedule.interval, schedule.weekly_anchor, schedule.minimum_amount) == ("weekly", 4, 5000)
    bad = client.post("/portal/payout-addresses/schedule",
                      {"interval": "hourly", "weekly_anchor": "9", "minimum_amount": "-1"})
    assert bad.status_code == 400
    assert PayoutSchedule.objects.get(merchant=merchant).interval == "weekly"
