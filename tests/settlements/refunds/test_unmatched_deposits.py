"""Unmatched deposits (late, over, wrong token, unknown intent) are refunded whole, the same way: over the API
(`crypto[unmatched_deposit]`) and from the admin (an action with a reason). They were never credited to a merchant, so
the refund first brings them onto the books: Dr deposits, Cr merchant_reserved (docs/money-out.md)."""
import pytest

from settlements.models import AccountKind, JournalTransaction
from settlements.refunds.models import Refund
from settlements.selectors import ledger_problems
from tests.merchants.factories import MerchantFactory
from tests.otp import login_verified
from tests.settlements.conftest import ONE_USDT, balance, owed
from tests.staff import staff_user

from .conftest import CUSTOMER, unmatched_deposit, written

pytestmark = pytest.mark.usefixtures("ledger_ready")


def test_an_unmatched_deposit_is_refunded_whole_over_the_api_and_once(api, merchant):
    deposit = unmatched_deposit(merchant)
    response = api.post("/v1/refunds", {"crypto[unmatched_deposit]": deposit.id,
                                        "crypto[destination_address]": CUSTOMER})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["charge"], body["amount"], body["currency"]) == ("pending", None, 300, "usd")
    assert body["crypto"] == {"amount_base_units": str(3 * ONE_USDT), "unmatched_deposit": deposit.id,
                              "pending_reason": None, "awaiting_approval": False}
    # on the books: the deposit's funds, owed to the customer; the merchant's available balance is untouched
    assert balance(AccountKind.DEPOSITS) == 3 * ONE_USDT
    assert -balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == 3 * ONE_USDT
    assert owed(merchant) == {"pending": 0, "available": 0}
    # a second refund of it is refused, and nothing is written
    before = written()
    again = api.post("/v1/refunds", {"crypto[unmatched_deposit]": deposit.id})
    assert again.status_code == 400 and again.json()["error"]["param"] == "crypto[unmatched_deposit]"
    assert written() == before
    # canceled: off the books again, and refundable once more
    api.post(f"/v1/refunds/{body['id']}/cancel")
    assert balance(AccountKind.DEPOSITS) == 0 and balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == 0
    assert list(JournalTransaction.objects.filter(source_id=body["id"]).order_by("id").values_list("kind", flat=True)) \
        == ["refund_unmatched_hold", "refund_release"]
    assert api.post("/v1/refunds", {"crypto[unmatched_deposit]": deposit.id}).json()["status"] == "requires_action"
    assert ledger_problems() == []


def test_an_amount_or_another_merchants_deposit_is_refused(api, merchant):
    deposit = unmatched_deposit(merchant)
    before = written()
    partial = api.post("/v1/refunds", {"crypto[unmatched_deposit]": deposit.id, "amount": 100})
    assert partial.status_code == 400 and partial.json()["error"]["param"] == "amount"
    both = api.post("/v1/refunds", {"crypto[unmatched_deposit]": deposit.id, "charge": "ch_x"})
    assert both.status_code == 400
    other = MerchantFactory()
    from payments.models import UnmatchedDeposit
    UnmatchedDeposit.objects.filter(pk=deposit.pk).update(merchant=other)
    missing = api.post("/v1/refunds", {"crypto[unmatched_deposit]": deposit.id})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "crypto[unmatched_deposit]"
    assert written() == before


def test_a_deposit_assigned_to_an_intent_cannot_be_refunded(api, merchant):
    from payments.corrections import unmatched_deposit_assign
    from tests.settlements.conftest import intent_for

    deposit = unmatched_deposit(merchant)
    unmatched_deposit_assign(deposit=deposit, intent=intent_for(merchant), actor=staff_user("finance"),
                             reason="the customer paid the old order")
    before = written()

    refused = api.post("/v1/refunds", {"crypto[unmatched_deposit]": deposit.id,
                                       "crypto[destination_address]": CUSTOMER})

    assert refused.status_code == 400
    assert (refused.json()["error"]["param"], refused.json()["error"]["code"]) == ("crypto[unmatched_deposit]",
                                                                                   "deposit_already_assigned")
    assert written() == before
    deposit.refresh_from_db()
    assert deposit.refund_reference == ""


def test_staff_refund_an_unmatched_deposit_from_the_admin_with_a_reason(admin_client, merchant):
    deposit = unmatched_deposit(merchant)
    url = "/admin/payments/unmatcheddeposit/"
    # the action asks for the reason (and optionally the address) first
    form = admin_client.post(url, {"action": "refund_deposits", "_selected_action": [deposit.pk]})
    assert form.status_code == 200 and b"Reason" in form.content
    before = written()
    refused = admin_client.post(url, {"action": "refund_deposits", "_selected_action": [deposit.pk], "apply": "1",
                                      "description": "", "destination_address": ""})
    assert refused.status_code == 200 and written() == before
    done = admin_client.post(url, {"action": "refund_deposits", "_selected_action": [deposit.pk], "apply": "1",
                                   "description": "customer paid after expiry, ticket 42",
                                   "destination_address": CUSTOMER})
    assert done.status_code == 302
    refund = Refund.objects.get(unmatched_deposit=deposit)
    assert (refund.status, refund.description, refund.destination_address) == (
        "pending", "customer paid after expiry, ticket 42", CUSTOMER)


def test_support_cannot_refund_an_unmatched_deposit_from_the_admin(client, merchant):
    # Given a support user (reads unmatched deposits; refunds need settlements.approve_refund, the finance role)
    deposit = unmatched_deposit(merchant)
    login_verified(client, staff_user("support"))
    before = written()
    # When they post the action, reason and address included
    client.post("/admin/payments/unmatcheddeposit/", {
        "action": "refund_deposits", "_selected_action": [deposit.pk], "apply": "1",
        "description": "no right to", "destination_address": CUSTOMER})
    # Then nothing is written
    assert written() == before and not Refund.objects.filter(unmatched_deposit=deposit).exists()
