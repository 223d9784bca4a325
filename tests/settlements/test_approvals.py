"""Approvals of money out (docs/money-out.md, "Approvals"): above a limit (the merchant's or the operator's, per
transaction or per UTC day) a payout or refund is created but waits (`pending`, `awaiting_approval`), is not sent, and
a staff member holding the approve permission who did not request it approves it (released to sending) or rejects
it (canceled, money back), with a fresh TOTP code; the database refuses a decision by the requester. A frozen merchant
is paid nothing."""
import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.test import Client

from audit.models import AuditRecord
from gateway.errors import DomainError
from merchants.services import merchant_freeze, merchant_unfreeze
from monitoring.collectors import BusinessCollector
from monitoring.selectors import operations_snapshot
from payments.models import Event
from settlements import approvals
from settlements.limits import money_out_value_minor
from settlements.models import AccountKind, JournalTransaction, MoneyOutDailyVolume, Payout, PayoutSchedule
from settlements.payouts import payout_create, payouts_advance, payouts_run_automatic
from settlements.refunds import services as refunds
from settlements.refunds.models import Refund
from tests.otp import login_verified, totp_code
from tests.staff import staff_user
from wallets.outgoing.models import OutgoingTransaction

from .conftest import ONE_USDT, balance, owed, token
from .payout_fixtures import create_payout, funded, snapshot, usable_address
from .refunds.conftest import CUSTOMER, credited_charge, unmatched_deposit, written

pytestmark = pytest.mark.usefixtures("ledger_ready")


def limits(merchant, *, per_transaction=None, per_day=None):
    merchant.limit_money_out_per_transaction_minor = per_transaction
    merchant.limit_money_out_per_day_minor = per_day
    merchant.save()


def ready_to_pay(merchant, usdt: int = 30):
    funded(merchant, usdt * ONE_USDT)
    usable_address(merchant)


def held(payout_id: str) -> bool:
    return Payout.objects.get(pk=payout_id).awaiting_approval


@pytest.fixture
def finance(db):
    return lambda name: staff_user("finance", name)


def test_value_in_minor_units_is_exact_and_rounds_up():
    assert money_out_value_minor(amount_base_units=5 * ONE_USDT, decimals=18, currency="usd") == 500
    assert money_out_value_minor(amount_base_units=5 * ONE_USDT + 1, decimals=18, currency="usd") == 501
    assert money_out_value_minor(amount_base_units=1_234_567, decimals=6, currency="usd") == 124
    assert money_out_value_minor(amount_base_units=1, decimals=6, currency="eur") is None


def test_above_the_merchant_limit_the_payout_waits_and_is_not_sent(api, merchant):
    # given a merchant whose payouts above $3 need an approval, and whose login asked over the API
    merchant.user = get_user_model().objects.create_user(username="owner@shop.example")
    merchant.save()
    limits(merchant, per_transaction=300)
    ready_to_pay(merchant)

    # when it asks for $5 and for $3
    big = create_payout(api, 500).json()
    small = create_payout(api, 300).json()

    # then the $5 one is pending, awaiting approval, shown so in the API and its event; the $3 one is not held
    assert (big["status"], big["crypto"]["awaiting_approval"], big["crypto"]["pending_reason"]) == (
        "pending", True, "awaiting_approval")
    assert small["crypto"]["awaiting_approval"] is False
    created = Event.objects.get(object_id=big["id"], type="payout.created")
    assert created.data["object"]["crypto"]["awaiting_approval"] is True
    row = Payout.objects.get(pk=big["id"])
    assert row.approval_reasons == ["merchant_per_transaction"]
    assert row.requested_by == merchant.user and row.requester.startswith("api_key:")
    # the money is reserved, but nothing is sent for it
    assert owed(merchant)["available"] == 22 * ONE_USDT
    payouts_advance()
    assert not OutgoingTransaction.objects.filter(source_reference=big["id"]).exists()
    assert api.get(f"/v1/payouts/{big['id']}").json()["crypto"]["pending_reason"] == "awaiting_approval"


def test_the_per_day_sum_counts_payouts_and_refunds_together(merchant):
    # given a daily limit of $10 and no limit per transaction
    limits(merchant, per_day=1000)
    ready_to_pay(merchant)
    charge = credited_charge(merchant, 10 * ONE_USDT)
    usdt = token()

    # when $4 and $4 go out, then $3 (the day would reach $11), then $2 (exactly $10)
    first = payout_create(merchant=merchant, token=usdt, amount=400, currency="usd")
    second = payout_create(merchant=merchant, token=usdt, amount=400, currency="usd")
    third = payout_create(merchant=merchant, token=usdt, amount=300, currency="usd")
    fourth = payout_create(merchant=merchant, token=usdt, amount=200, currency="usd")
    # and then a refund of $0.50: the day is full
    refund = refunds.refund_create(merchant=merchant, livemode=False, charge=charge, amount=50,
                                   destination_address=CUSTOMER)

    # then only the one that would pass the limit and the refund after the day was full wait
    assert [held(p.id) for p in (first, second, third, fourth)] == [False, False, True, False]
    assert Payout.objects.get(pk=third.id).approval_reasons == ["merchant_per_day"]
    assert (refund.status, refund.awaiting_approval, refund.pending_reason) == ("pending", True, "awaiting_approval")
    assert refunds.refund_json(Refund.objects.get(pk=refund.id))["crypto"]["awaiting_approval"] is True
    assert MoneyOutDailyVolume.objects.get(scope=merchant.pk).amount_minor == 1000
    # and a held refund is not sent
    assert refunds.refund_send(refund_id=refund.id).outgoing_transaction_id is None


def test_the_operators_limits_hold_any_merchant(merchant, settings):
    settings.GATEWAY_MONEY_OUT_LIMIT_PER_TRANSACTION_MINOR = 250
    settings.GATEWAY_MONEY_OUT_LIMIT_PER_DAY_MINOR = 400
    ready_to_pay(merchant)
    usdt = token()

    over_one = payout_create(merchant=merchant, token=usdt, amount=300, currency="usd")
    first = payout_create(merchant=merchant, token=usdt, amount=250, currency="usd")
    over_day = payout_create(merchant=merchant, token=usdt, amount=200, currency="usd")

    assert Payout.objects.get(pk=over_one.id).approval_reasons == ["operator_per_transaction"]
    assert not held(first.id)
    assert Payout.objects.get(pk=over_day.id).approval_reasons == ["operator_per_day"]
    assert MoneyOutDailyVolume.objects.get(scope=MoneyOutDailyVolume.OPERATOR).amount_minor == 250


def test_the_requester_cannot_decide_and_the_database_refuses_it(merchant, finance):
    # given a refund of an unmatched deposit started by a finance member, over the merchant's limit
    limits(merchant, per_transaction=100)
    maker, checker = finance("maker"), finance("checker")
    deposit = unmatched_deposit(merchant)
    refund = refunds.refund_create_for_deposit(deposit=deposit, destination_address=CUSTOMER,
                                               ctx=refunds.RefundContext(actor=maker))
    assert refund.awaiting_approval and refund.requested_by == maker

    # when the maker approves or rejects it: refused, nothing changed
    for decide in (lambda: approvals.refund_approve(refund=refund, actor=maker),
                   lambda: approvals.refund_reject(refund=refund, actor=maker, note="no")):
        with pytest.raises(DomainError) as refused:
            decide()
        assert refused.value.code == "maker_checker"
    assert Refund.objects.get(pk=refund.id).awaiting_approval
    # and the database refuses it too, for refunds and payouts
    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.filter(pk=refund.pk).update(awaiting_approval=False, approval_decision="approved",
                                                   approval_decided_by=maker)
    ready_to_pay(merchant)
    payout = payout_create(merchant=merchant, token=token(), amount=500, currency="usd", actor=maker)
    assert payout.awaiting_approval and payout.requested_by == maker
    with pytest.raises(IntegrityError), transaction.atomic():
        Payout.objects.filter(pk=payout.pk).update(awaiting_approval=False, approval_decision="approved",
                                                   approval_decided_by=maker)

    # when another member approves: released, with its event and audit record
    approved = approvals.refund_approve(refund=refund, actor=checker, note="known customer")
    assert (approved.awaiting_approval, approved.approval_decided_by, approved.pending_reason) == (False, checker, "")
    assert Event.objects.filter(object_id=refund.id, type="refund.updated").exists()
    assert AuditRecord.objects.filter(object_id=refund.id, action="refund.approve").count() == 1
    with pytest.raises(DomainError):  # decided once
        approvals.refund_approve(refund=refund, actor=checker)


def _admin(user) -> tuple[Client, object]:
    client = Client()
    device = login_verified(client, user)
    return client, device


def test_the_admin_approves_with_a_fresh_totp_code_only(api, merchant, finance):
    limits(merchant, per_transaction=100)
    ready_to_pay(merchant)
    payout_id = create_payout(api, 500).json()["id"]
    checker, device = _admin(finance("checker"))
    approve = {"action": "approve", "_selected_action": [payout_id], "apply": "1", "note": "ok"}

    # a wrong code, or none: the form again, nothing decided
    for code in ("000000", ""):
        page = checker.post("/admin/settlements/payout/", {**approve, "otp_token": code})
        assert page.status_code == 200 and "otp_token" in page.context["form"].errors
        assert held(payout_id)
    # a support member cannot see the action at all
    support, _ = _admin(staff_user("support", "helper"))
    support.post("/admin/settlements/payout/", {**approve, "otp_token": "123456"})
    assert held(payout_id)

    # the right code: approved, released to sending, recorded
    checker.post("/admin/settlements/payout/", {**approve, "otp_token": totp_code(device)})
    payout = Payout.objects.get(pk=payout_id)
    assert (payout.awaiting_approval, payout.approval_decision, payout.pending_reason) == (False, "approved", "")
    assert Event.objects.filter(object_id=payout_id, type="payout.updated").count() == 1
    assert AuditRecord.objects.filter(object_id=payout_id, action="payout.approve").count() == 1


def test_a_rejection_cancels_and_returns_the_money(api, merchant, finance):
    limits(merchant, per_transaction=100)
    ready_to_pay(merchant)
    charge = credited_charge(merchant, 10 * ONE_USDT)
    before = owed(merchant)["available"]
    payout_id = create_payout(api, 500).json()["id"]
    refund = refunds.refund_create(merchant=merchant, livemode=False, charge=charge, amount=400,
                                   destination_address=CUSTOMER)
    checker, device = _admin(finance("checker"))

    # a rejection needs a reason
    reject = {"action": "reject", "_selected_action": [payout_id], "apply": "1", "otp_token": totp_code(device)}
    page = checker.post("/admin/settlements/payout/", {**reject, "note": ""})
    assert page.status_code == 200 and held(payout_id)
    checker.post("/admin/settlements/payout/", {**reject, "note": "not this week", "otp_token": totp_code(device)})
    checker.post("/admin/settlements/refund/", {**reject, "_selected_action": [refund.id], "note": "fraud review",
                                                "otp_token": totp_code(device)})

    # then both are canceled, with Stripe's events, and the money is available again
    payout = Payout.objects.get(pk=payout_id)
    assert (payout.status, payout.approval_decision, payout.approval_note) == ("canceled", "rejected",
                                                                               "not this week")
    assert Event.objects.filter(object_id=payout_id, type="payout.canceled").count() == 1
    assert JournalTransaction.objects.filter(source_id=payout_id, kind="payout_cancel").count() == 1
    refund.refresh_from_db()
    charge.refresh_from_db()
    assert (refund.status, refund.approval_decision) == ("canceled", "rejected") and charge.amount_refunded == 0
    assert owed(merchant)["available"] == before
    assert -balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == 0
    assert set(AuditRecord.objects.filter(object_id__in=[payout_id, refund.id]).values_list("action", flat=True)) \
        >= {"payout.reject", "refund.reject"}


def test_a_frozen_merchant_is_paid_nothing(api, merchant):
    ready_to_pay(merchant)
    charge = credited_charge(merchant, 10 * ONE_USDT)
    PayoutSchedule.objects.create(merchant=merchant, interval=PayoutSchedule.Interval.DAILY)
    pending = payout_create(merchant=merchant, token=token(), amount=100, currency="usd")
    pending_refund = refunds.refund_create(merchant=merchant, livemode=False, charge=charge, amount=100,
                                           destination_address=CUSTOMER)
    merchant_freeze(merchant=merchant, reason="chargeback storm")

    # a new payout or refund over the API: refused, naming the frozen account, nothing written
    before, refunds_before = snapshot(), written()
    response = create_payout(api, 100)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_frozen"
    refused = api.post("/v1/refunds", {"charge": charge.id, "amount": 100, "crypto[destination_address]": CUSTOMER})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "account_frozen"
    # the automatic run pays nothing either (and leaves the schedule due for after the unfreeze)
    assert payouts_run_automatic() == []
    assert PayoutSchedule.objects.get(merchant=merchant).last_run_at is None
    assert (snapshot(), written()) == (before, refunds_before)

    # the payout and refund pending from before wait with the reason, and are not sent
    payouts_advance()
    refunds.refunds_advance()
    assert Payout.objects.get(pk=pending.id).pending_reason == "account_frozen"
    assert Refund.objects.get(pk=pending_refund.id).pending_reason == "account_frozen"
    assert not OutgoingTransaction.objects.exists()

    # after the unfreeze they move on (here to the next reason: no hot wallet in this test)
    merchant_unfreeze(merchant=merchant)
    payouts_advance()
    refunds.refunds_advance()
    assert Payout.objects.get(pk=pending.id).pending_reason != "account_frozen"
    assert Refund.objects.get(pk=pending_refund.id).pending_reason != "account_frozen"


def test_pending_approvals_are_counted_for_the_operator_and_a_canceled_one_no_longer_waits(api, merchant, finance):
    limits(merchant, per_transaction=100)
    ready_to_pay(merchant)
    charge = credited_charge(merchant, 10 * ONE_USDT)
    first = create_payout(api, 500).json()["id"]
    create_payout(api, 200)
    refunds.refund_create(merchant=merchant, livemode=False, charge=charge, amount=300)  # no address yet: held too

    assert operations_snapshot(with_broker=False).approvals_pending == {"payouts": 2, "refunds": 1,
                                                                         "ledger_adjustments": 0}
    gauge = next(m for m in BusinessCollector().collect() if m.name == "gateway_approvals_pending")
    assert {s.labels["kind"]: s.value for s in gauge.samples} == {"payouts": 2, "refunds": 1,
                                                                   "ledger_adjustments": 0}

    # the merchant cancels one while it waits: it no longer waits, and there is nothing left to decide
    assert api.post(f"/v1/payouts/{first}/cancel").json()["status"] == "canceled"
    assert not held(first)
    with pytest.raises(DomainError) as refused:
        approvals.payout_approve(payout=Payout.objects.get(pk=first), actor=finance("checker"))
    assert refused.value.code == "approval_not_awaited"
    assert operations_snapshot(with_broker=False).approvals_pending["payouts"] == 1
    page = staff_client(finance("viewer")).get("/admin/operations/")
    assert "Payouts awaiting approval" in page.content.decode()


def staff_client(user) -> Client:
    return _admin(user)[0]
