"""Manual corrections by staff (payments.corrections): an unmatched deposit assigned to an intent funds it by the
normal rules, once; an intent canceled by hand with a reason. Each leaves its events and its audit record; a refusal
changes nothing."""
import pytest
from django.test import Client

from audit.models import AuditRecord
from gateway.errors import DomainError
from payments import funding
from payments.corrections import payment_intent_cancel_by_staff, unmatched_deposit_assign
from payments.models import Charge, ChargeLedgerOutbox, DepositAssignment, Event, PaymentIntent, UnmatchedDeposit
from payments.services import PaymentIntentInput, payment_intent_cancel, payment_intent_create
from tests.merchants.factories import MerchantFactory
from tests.otp import login_verified
from tests.staff import staff_user
from tests.payments.test_funding import DUE, apply, orphan, pay

pytestmark = pytest.mark.usefixtures("ready")


def new_intent(merchant, amount=1234):
    return payment_intent_create(merchant=merchant, livemode=False,
                                 data=PaymentIntentInput(amount=amount, currency="usd", networks=["bsc"]))


@pytest.fixture
def finance(db):
    return staff_user("finance")


@pytest.fixture
def late_deposit(merchant):
    """A payment that reached an intent after it was canceled: recorded as an unmatched deposit, not credited."""
    closed = new_intent(merchant)
    payment_intent_cancel(intent=closed, reason="abandoned")
    pay(closed, DUE, final=True)
    apply()
    return UnmatchedDeposit.objects.get(payment_intent=closed)


def _facts():
    return (Charge.objects.count(), Event.objects.count(), ChargeLedgerOutbox.objects.count(),
            DepositAssignment.objects.count(), AuditRecord.objects.count())


def test_an_assigned_deposit_funds_its_intent_once(merchant, finance, late_deposit):
    target = new_intent(merchant)

    unmatched_deposit_assign(deposit=late_deposit, intent=target, actor=finance, reason="customer paid the old order")

    target.refresh_from_db()
    assert target.status == "succeeded" and target.amount_received == 1234
    charge = Charge.objects.get(payment_intent=target)
    assert charge.transfer_id == late_deposit.transfer_id and charge.amount == 1234
    assert Event.objects.filter(type="payment_intent.succeeded", object_id=target.id).count() == 1
    assert ChargeLedgerOutbox.objects.filter(charge=charge).count() == 1
    record = AuditRecord.objects.get(action="unmatched_deposit.assign")
    assert (record.actor_type, record.object_id, record.reason) == ("staff", late_deposit.id,
                                                                    "customer paid the old order")
    assert record.before["status"] == "requires_action" and record.after["status"] == "succeeded"

    # Twice, and the watcher's applications of both addresses again: nothing more.
    facts = _facts()
    unmatched_deposit_assign(deposit=late_deposit, intent=target, actor=finance, reason="again")
    for address_id in (late_deposit.transfer.deposit_address_id, target.deposit_address_id):
        funding.address_apply(deposit_address_id=address_id)
    assert _facts() == facts
    assert PaymentIntent.objects.get(pk=late_deposit.payment_intent_id).status == "canceled"


def test_an_assignment_elsewhere_or_to_a_wrong_intent_is_refused_and_changes_nothing(merchant, finance,
                                                                                     late_deposit):
    other_merchant_intent = new_intent(MerchantFactory())
    paid = new_intent(merchant)
    pay(paid, DUE, final=True)
    apply()
    facts = _facts()

    for intent, words in ((other_merchant_intent, "another merchant"), (paid, "succeeded")):
        with pytest.raises(DomainError, match=words) as refused:
            unmatched_deposit_assign(deposit=late_deposit, intent=intent, actor=finance, reason="try")
        assert refused.value.param == "payment_intent"
    with pytest.raises(DomainError, match="reason"):
        unmatched_deposit_assign(deposit=late_deposit, intent=new_intent(merchant), actor=finance, reason=" ")
    assert _facts()[0:4] == (facts[0], facts[1] + 2, facts[2], facts[3])  # only the new intents' created events

    first = new_intent(merchant)
    unmatched_deposit_assign(deposit=late_deposit, intent=first, actor=finance, reason="right order")
    with pytest.raises(DomainError, match="already assigned"):
        unmatched_deposit_assign(deposit=late_deposit, intent=new_intent(merchant), actor=finance, reason="x")


def test_cancel_by_staff_with_a_reason_and_its_event(merchant, finance):
    intent = new_intent(merchant)

    payment_intent_cancel_by_staff(intent=intent, actor=finance, reason="merchant asked by phone",
                                   cancellation_reason="requested_by_customer")

    intent.refresh_from_db()
    assert intent.status == "canceled" and intent.cancellation_reason == "requested_by_customer"
    assert Event.objects.filter(type="payment_intent.canceled", object_id=intent.id).count() == 1
    record = AuditRecord.objects.get(action="payment_intent.cancel")
    assert record.reason == "merchant asked by phone" and record.after["status"] == "canceled"


def test_cancel_of_a_paid_intent_is_refused_and_changes_nothing(merchant, finance):
    intent = new_intent(merchant)
    pay(intent, DUE, final=True)
    apply()
    facts = _facts()

    with pytest.raises(DomainError, match="succeeded"):
        payment_intent_cancel_by_staff(intent=intent, actor=finance, reason="oops")

    assert PaymentIntent.objects.get(pk=intent.pk).status == "succeeded" and _facts() == facts


def test_admin_actions_ask_for_a_reason_then_run_the_service(merchant, finance, late_deposit):
    client = Client()
    login_verified(client, finance)
    target = new_intent(merchant)
    url = "/admin/payments/unmatcheddeposit/"
    form = {"action": "assign", "_selected_action": [late_deposit.pk]}

    asked = client.post(url, form)
    assert asked.status_code == 200 and b"reason" in asked.content and not DepositAssignment.objects.exists()
    missing = client.post(url, {**form, "apply": "1", "payment_intent": target.id, "reason": ""})
    assert missing.status_code == 200 and missing.context["form"].errors["reason"]
    done = client.post(url, {**form, "apply": "1", "payment_intent": target.id, "reason": "late, same order"})

    assert done.status_code == 302
    assert PaymentIntent.objects.get(pk=target.pk).status == "succeeded"
    assert AuditRecord.objects.filter(action="unmatched_deposit.assign", actor_id=str(finance.pk)).count() == 1
    assert AuditRecord.objects.filter(action="admin.action.assign").count() == 1

    cancel = new_intent(merchant)
    client.post("/admin/payments/paymentintent/", {"action": "cancel_by_staff", "_selected_action": [cancel.pk],
                                                   "apply": "1", "cancellation_reason": "duplicate",
                                                   "reason": "duplicate order"})
    assert PaymentIntent.objects.get(pk=cancel.pk).status == "canceled"


def test_a_reorg_of_an_assigned_deposit_reaches_the_intent_it_funds(merchant, finance, late_deposit):
    target = new_intent(merchant)
    unmatched_deposit_assign(deposit=late_deposit, intent=target, actor=finance, reason="late, same order")

    orphan(late_deposit.transfer)  # the watcher queues the deposit's own address
    funding.address_activity_process()  # which hands it on to the intent's address
    apply()

    target.refresh_from_db()
    assert target.status == "requires_action" and target.amount_received == 0
    assert Charge.objects.get(payment_intent=target).status == "reversed"
    assert Event.objects.filter(type="charge.reversed").count() == 1


def test_a_deposit_being_refunded_cannot_be_assigned_until_its_refund_is_canceled(merchant, finance, late_deposit):
    from settlements.refunds.services import refund_cancel, refund_create_for_deposit

    refund = refund_create_for_deposit(deposit=late_deposit)
    target = new_intent(merchant)
    facts = _facts()

    with pytest.raises(DomainError, match="being refunded") as refused:
        unmatched_deposit_assign(deposit=late_deposit, intent=target, actor=finance, reason="paid twice?")

    assert refused.value.param == "payment_intent"
    assert _facts() == facts
    target.refresh_from_db()
    assert target.status == "requires_action"
    # the refund canceled: the deposit can fund an intent again
    refund_cancel(refund=refund)
    late_deposit.refresh_from_db()
    assert late_deposit.refund_reference == ""
    unmatched_deposit_assign(deposit=late_deposit, intent=target, actor=finance, reason="customer asked")
    assert PaymentIntent.objects.get(pk=target.pk).status == "succeeded"
