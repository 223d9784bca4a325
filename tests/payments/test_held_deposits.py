"""Held deposits without a chain (the facts written as the scanner writes them): every path of
`funding.address_apply` holds a blocked sender's transfer (seen, final, late, extra), and a released one counts by
the normal rules; a decision survives a reorg that re-mines the transfer in a new block (a new Transfer row)."""
import pytest
from django.test import Client

from audit.models import AuditRecord
from gateway.errors import DomainError
from payments.corrections import held_deposit_keep, held_deposit_release
from payments.models import Charge, HeldDeposit, UnmatchedDeposit
from payments.selectors import checkout_funds
from payments.services import payment_intent_cancel
from tests.otp import login_verified
from tests.payments.test_funding import DUE, apply, finalize, intent, orphan, pay, types  # noqa: F401 (fixture)
from tests.staff import staff_user
from wallets.blocklist import blocked_address_add, blocked_address_deactivate
from wallets.models import AddressActivity, Transfer

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


def remine(transfer: Transfer) -> Transfer:
    """The same on-chain transfer (network, tx_hash, log_index) in the next block of the new chain, as the scanner
    records it after a reorg orphaned its row: a new live row, and the address queued."""
    again = Transfer.objects.create(**{
        **{f.attname: getattr(transfer, f.attname) for f in Transfer._meta.concrete_fields
           if f.attname not in ("id", "seen_at", "orphaned_at", "finalized_at")},
        "block_number": transfer.block_number + 1, "block_hash": "0x" + "7" * 64,
    })
    AddressActivity.objects.create(deposit_address_id=transfer.deposit_address_id)
    return again


def reorg(transfer: Transfer) -> Transfer:
    orphan(transfer)
    apply()
    again = remine(transfer)
    apply()
    return again


def decision(hold: HeldDeposit) -> tuple:
    hold.refresh_from_db()
    return hold.status, hold.decided_at, hold.decided_by, hold.decision_reason


def test_a_released_deposit_re_mined_by_a_reorg_stays_released_and_is_credited_once(intent, blocked):
    t = pay(intent, DUE)
    apply()
    first = HeldDeposit.objects.get()
    held_deposit_release(hold=first, actor=staff_user("security"), reason="sender cleared, ticket 7")
    intent.refresh_from_db()
    assert intent.status == "processing"

    # When a reorg re-mines it in another block (the sender still blocked), and it becomes final there
    again = reorg(t)
    finalize(again)
    apply()

    # Then its new hold is released with the same decision, and the intent is credited once, by the new row
    second = HeldDeposit.objects.get(transfer=again)
    assert decision(second) == decision(first)
    assert second.decision_reason == "sender cleared, ticket 7" and second.decided_by == "security@ops.example"
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 1234
    assert Charge.objects.get().transfer == again
    assert types(intent) == ["payment_intent.processing", "payment_intent.reversed", "payment_intent.processing",
                             "payment_intent.succeeded"]
    # and the carried decision is audited, by the system, in the apply that made the hold
    record = AuditRecord.objects.get(action="held_deposit.carry_over")
    assert (record.actor_type, record.actor_id, record.object_id) == ("system", "task:address_apply", second.id)
    assert (record.after["status"], record.after["carried_from"], record.after["transfer"]) == (
        "released", first.id, again.id)
    assert record.after["decision_reason"] == "sender cleared, ticket 7"

    # and applying again changes nothing
    AddressActivity.objects.create(deposit_address=intent.deposit_address)
    apply()
    assert HeldDeposit.objects.count() == 2 and Charge.objects.count() == 1
    assert AuditRecord.objects.filter(action__startswith="held_deposit.").count() == 2


def test_a_kept_deposit_re_mined_by_a_reorg_stays_kept_after_its_sender_left_the_list(intent, blocked):
    t = pay(intent, DUE)
    apply()
    first = HeldDeposit.objects.get()
    security = staff_user("security")
    held_deposit_keep(hold=first, actor=security, reason="frozen, case 1")
    blocked_address_deactivate(blocked=blocked, actor="command:test", reason="delisted")

    # When a reorg re-mines it in another block, and it becomes final there
    again = reorg(t)
    finalize(again)
    apply()

    # Then it is still kept (the blocklist no longer names its sender, the decision stands): never credited
    second = HeldDeposit.objects.get(transfer=again)
    assert decision(second) == decision(first) and second.status == "kept"
    intent.refresh_from_db()
    assert intent.status == "requires_action" and intent.amount_received == 0 and not Charge.objects.exists()
    assert not UnmatchedDeposit.objects.exists()
    assert AuditRecord.objects.get(action="held_deposit.carry_over").after["status"] == "kept"

    # When staff release it later, on the live row's hold: both holds released, credited once
    held_deposit_release(hold=second, actor=security, reason="cleared by the authorities")
    assert decision(first) == decision(second) and first.status == "released"
    intent.refresh_from_db()
    assert intent.status == "succeeded" and Charge.objects.get().transfer == again
    assert sorted(AuditRecord.objects.filter(action="held_deposit.release").values_list("object_id", flat=True)) == (
        sorted([first.id, second.id]))


def test_a_decision_on_the_orphaned_hold_decides_the_new_one_too(intent, blocked):
    t = pay(intent, DUE)
    apply()
    first = HeldDeposit.objects.get()
    # Given the transfer re-mined by a reorg before staff decided: two holds of one on-chain transfer, both held
    again = reorg(t)
    second = HeldDeposit.objects.get(transfer=again)
    assert second.status == "held" and not AuditRecord.objects.filter(action__startswith="held_deposit.").exists()

    # When staff release it from the orphaned row's hold (the admin list shows both)
    held_deposit_release(hold=first, actor=staff_user("security"), reason="false positive")

    # Then both are released with that decision, each audited, and the live row counts at once, then once when final
    assert decision(second) == decision(first) and second.status == "released"
    records = AuditRecord.objects.filter(action="held_deposit.release").order_by("seq")
    assert sorted(r.object_id for r in records) == sorted([first.id, second.id])
    assert {r.reason for r in records} == {"false positive"}
    intent.refresh_from_db()
    assert intent.status == "processing"
    finalize(again)
    apply()
    intent.refresh_from_db()
    assert intent.status == "succeeded" and Charge.objects.get().transfer == again
    # and deciding again on either is nothing more
    held_deposit_release(hold=second, actor=staff_user("security", name="other"), reason="again")
    assert AuditRecord.objects.filter(action="held_deposit.release").count() == 2
