"""The blocklist on money going out: a payout address or a refund destination on the blocklist is refused where it
is given (portal, API, claim page) with the field named and nothing written; a payout or refund queued before its
destination was blocked is held with a reason, not sent."""
import pytest
from django.test import Client

from settlements.models import Payout, PayoutAddress
from settlements.payouts import payout_create, payouts_advance, payouts_run_automatic
from settlements.refunds.models import Refund
from settlements.refunds.services import refund_create, refunds_advance
from tests.otp import login_verified, totp_code
from tests.settlements.conftest import ONE_USDT, owed, token
from tests.settlements.payout_fixtures import RECIPIENT, create_payout, funded, snapshot, usable_address
from tests.settlements.refunds.conftest import credited_charge, written
from wallets.blocklist import blocked_address_add
from wallets.outgoing.models import OutgoingTransaction

pytestmark = pytest.mark.usefixtures("ledger_ready")
BLOCKED = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96"


@pytest.fixture
def blocked(db):
    return blocked_address_add(address=BLOCKED, reason="SDN 16193", actor="command:test", source="ofac")


def test_a_blocked_payout_address_is_refused_in_the_portal(merchant, blocked, django_user_model):
    user = django_user_model.objects.create_user(username=merchant.email, email=merchant.email, password="pw-1234567")
    merchant.user = user
    merchant.save(update_fields=["user"])
    client = Client()
    device = login_verified(client, user)
    response = client.post("/portal/payout-addresses/", {"token": str(token().id), "address": BLOCKED,
                                                          "otp_token": totp_code(device)})
    assert response.status_code == 400 and "blocklist" in response.content.decode()
    assert not PayoutAddress.objects.exists()


def test_a_payout_to_a_blocked_address_is_refused_naming_the_field_and_nothing_is_written(api, merchant):
    funded(merchant)
    usable_address(merchant, address=BLOCKED.lower())
    blocked_address_add(address=BLOCKED, reason="SDN 16193", actor="command:test", source="ofac")
    before = snapshot()

    response = create_payout(api, 100)

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "payout_address_blocked", "crypto[network]")
    assert snapshot() == before and owed(merchant)["available"] == 10 * ONE_USDT
    # automatic payouts skip it too (the other merchants' run goes on)
    assert payouts_run_automatic(merchant=merchant) == []


def test_a_queued_payout_whose_address_becomes_blocked_is_held_not_sent(api, merchant):
    funded(merchant)
    usable_address(merchant)
    payout = payout_create(merchant=merchant, token=token(), amount=100, currency="usd", actor="command:test")
    blocked_address_add(address=RECIPIENT, reason="case 3", actor="command:test")

    payouts_advance()
    payouts_advance()

    payout.refresh_from_db()
    assert (payout.status, payout.pending_reason, payout.outgoing_transaction_id) == (
        "pending", "destination_blocked", None)
    assert not OutgoingTransaction.objects.exists()
    assert api.get(f"/v1/payouts/{payout.id}").json()["crypto"]["pending_reason"] == "destination_blocked"


def test_a_blocked_refund_destination_is_refused_on_the_api_and_on_the_claim_page(api, merchant, blocked):
    charge = credited_charge(merchant)
    before = written()

    response = api.post("/v1/refunds", {"charge": charge.id, "crypto[destination_address]": BLOCKED})

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "crypto[destination_address]")
    assert "cannot send funds to this address" in error["message"]
    assert written() == before

    # the claim page: the customer's address refused, the refund still waits for one
    refund = refund_create(merchant=merchant, livemode=False, charge=charge, amount=250)
    before = written()
    response = Client().post(f"/claim/{refund.claim_token}",
                             {"address": BLOCKED, "address_confirm": BLOCKED, "confirm": "on"})
    assert response.status_code == 400 and "cannot send funds to this address" in response.content.decode()
    assert written() == before
    refund.refresh_from_db()
    assert (refund.status, refund.destination_address) == ("requires_action", "")


def test_a_queued_refund_whose_destination_becomes_blocked_is_held_not_sent(merchant):
    charge = credited_charge(merchant)
    refund = refund_create(merchant=merchant, livemode=False, charge=charge, amount=250,
                           destination_address=BLOCKED.lower())
    blocked_address_add(address=BLOCKED, reason="case 4", actor="command:test")

    refunds_advance()

    refund = Refund.objects.get(pk=refund.pk)
    assert (refund.status, refund.pending_reason, refund.outgoing_transaction_id) == (
        "pending", "destination_blocked", None)
    assert not OutgoingTransaction.objects.exists()
    assert Payout.objects.count() == 0
