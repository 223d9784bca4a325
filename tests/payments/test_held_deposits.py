"""Held deposits without a chain (the facts written as the scanner writes them): every path of
`funding.address_apply` holds a blocked sender's transfer (seen, final, late, extra), and a released one counts by
the normal rules."""
import pytest
from django.test import Client

from audit.models import AuditRecord
from gateway.errors import DomainError
from payments.corrections import held_deposit_keep, held_deposit_release
from payments.models import Charge, HeldDeposit, UnmatchedDeposit
from payments.selectors import checkout_funds
from payments.services import payment_intent_cancel
from tests.otp import login_verified
from tests.payments.test_funding import DUE, apply, finalize, intent, pay  # noqa: F401 (fixture)
from tests.staff import staff_user
from wallets.blocklist import blocked_address_add

pytestmark = pytest.mark.usefixtures("ready")
SENDER = "0x" + "b" * 40  # the sender of tests.payments.test_funding.pay


@pytest.fixture
def blocked(db):
    return blocked_address_add(address=SENDER, reason="case 1", actor="command:test")


def test_a_transfer_seen_then_blocked_before_it_is_final_is_held_and_the_intent_goes_back(intent):
    t = pay(intent, DUE)
    apply()
    intent.refresh_from_db()
    assert intent.status == "processing"

    blocked_address_add(address=SENDER, reason="case 1", actor="command:test")
    finalize(t)
    apply()

    intent.refresh_from_db()
    assert intent.status == "requires_action" and intent.amount_received == 0 and not Charge.objects.exists()
    assert HeldDeposit.objects.get().transfer == t
    # and the checkout does not count it as received (it shows the whole amount still due)
    assert checkout_funds(intent=intent).paid == []


def test_a_late_payment_from_a_blocked_sender_is_held_and_once_released_is_an_unmatched_deposit(intent, blocked):
    payment_intent_cancel(intent=intent, reason="abandoned")
    t = pay(intent, DUE, final=True)
    apply()
    assert not UnmatchedDeposit.objects.exists()
    hold = HeldDeposit.objects.get(transfer=t)

    held_deposit_release(hold=hold, actor=staff_user("security"), reason="cleared")

    assert UnmatchedDeposit.objects.get(transfer=t).reason == "intent_closed"
    intent.refresh_from_db()
    assert intent.status == "canceled" and not Charge.objects.exists()


def test_an_extra_payment_from_a_blocked_sender_is_held_beside_the_credited_one(intent, blocked):
    blocked.active = False  # the first payment came before the address was listed
    blocked.save()
    pay(intent, DUE, final=True)
    apply()
    blocked.active = True
    blocked.save()
    extra = pay(intent, DUE, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 1234 and Charge.objects.count() == 1
    assert HeldDeposit.objects.get().transfer == extra


def test_a_decision_needs_a_reason_and_a_released_hold_cannot_be_kept(intent, blocked):
    pay(intent, DUE, final=True)
    apply()
    hold = HeldDeposit.objects.get()
    security = staff_user("security")
    with pytest.raises(DomainError, match="reason"):
        held_deposit_keep(hold=hold, actor=security, reason=" ")
    held_deposit_keep(hold=hold, actor=security, reason="frozen")
    held_deposit_release(hold=hold, actor=security, reason="unfrozen")
    with pytest.raises(DomainError, match="released"):
        held_deposit_keep(hold=hold, actor=security, reason="again")
    assert list(AuditRecord.objects.order_by("seq").values_list("action", flat=True))[-2:] == [
        "held_deposit.keep", "held_deposit.release"]
    intent.refresh_from_db()
    assert intent.status == "succeeded"


def test_security_staff_release_in_the_admin(intent, blocked):
    pay(intent, DUE, final=True)
    apply()
    hold = HeldDeposit.objects.get()
    client = Client()
    login_verified(client, staff_user("security"))
    assert hold.id in client.get("/admin/payments/helddeposit/").content.decode()
    response = client.post("/admin/payments/helddeposit/", {
        "action": "release", "_selected_action": [hold.pk], "apply": "1", "reason": "false positive"})
    assert response.status_code == 302
    assert HeldDeposit.objects.get().status == "released"
    intent.refresh_from_db()
    assert intent.status == "succeeded"
    finance = Client()
    login_verified(finance, staff_user("finance"))
    assert finance.post("/admin/payments/helddeposit/", {
        "action": "keep", "_selected_action": [hold.pk], "apply": "1", "reason": "x"}).status_code in (200, 302)
    assert HeldDeposit.objects.get().status == "released"
