"""Ledger adjustments, maker-checker: proposed with a reason by one staff member, posted only when a second one
approves (one ADJUSTMENT journal transaction); the proposer can never decide their own, in the service nor in the
database; each step has its audit record."""
import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from audit.models import AuditRecord
from gateway.errors import DomainError
from settlements.adjustments import ledger_adjustment_approve, ledger_adjustment_propose, ledger_adjustment_reject
from settlements.models import AccountKind, JournalTransaction, LedgerAdjustment
from settlements.services import ledger_account_get
from tests.otp import login_verified
from tests.staff import staff_user

from .conftest import ONE_USDT, balance, bsc, token

pytestmark = pytest.mark.usefixtures("ledger_ready")


@pytest.fixture
def finance(db):
    return lambda name: staff_user("finance", name)


def accounts(merchant):
    def get(kind, merchant_id=None):
        return ledger_account_get(kind=kind, network_id=bsc().id, token_id=token().id, merchant_id=merchant_id,
                                  livemode=False)
    return get(AccountKind.FEE_REVENUE), get(AccountKind.MERCHANT_AVAILABLE, merchant.pk)


def test_proposed_then_approved_by_another_posts_once(merchant, finance):
    maker, checker = finance("maker"), finance("checker")
    fee_revenue, available = accounts(merchant)

    proposed = ledger_adjustment_propose(debit_account=fee_revenue, credit_account=available,
                                         amount_base_units=2 * ONE_USDT, reason="refund of a fee charged twice",
                                         actor=maker)
    assert not JournalTransaction.objects.filter(kind="adjustment").exists()
    assert balance(AccountKind.MERCHANT_AVAILABLE, merchant=merchant) == 0

    with pytest.raises(DomainError, match="another staff member") as refused:
        ledger_adjustment_approve(adjustment=proposed, actor=maker)
    assert refused.value.code == "maker_checker"
    assert LedgerAdjustment.objects.get(pk=proposed.pk).status == "proposed"

    approved = ledger_adjustment_approve(adjustment=proposed, actor=checker, note="checked the two charges")
    journal = JournalTransaction.objects.get(kind="adjustment", source_type="ledger_adjustment", source_id=proposed.id)
    assert approved.journal == journal and approved.status == "approved" and approved.decided_by == checker
    assert balance(AccountKind.MERCHANT_AVAILABLE, merchant=merchant) == -2 * ONE_USDT
    assert balance(AccountKind.FEE_REVENUE) == 2 * ONE_USDT

    with pytest.raises(DomainError, match="already approved"):
        ledger_adjustment_approve(adjustment=proposed, actor=checker)
    assert JournalTransaction.objects.filter(kind="adjustment").count() == 1
    assert [r.action for r in AuditRecord.objects.filter(object_id=proposed.id).order_by("seq")] == [
        "ledger_adjustment.propose", "ledger_adjustment.approve"]


def test_the_database_refuses_a_decision_by_the_proposer(merchant, finance):
    maker = finance("maker")
    fee_revenue, available = accounts(merchant)
    proposed = ledger_adjustment_propose(debit_account=fee_revenue, credit_account=available, amount_base_units=1,
                                         reason="x", actor=maker)

    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAdjustment.objects.filter(pk=proposed.pk).update(status="rejected", decided_by=maker)


def test_rejected_posts_nothing_and_bad_proposals_name_the_field(merchant, finance):
    maker, checker = finance("maker"), finance("checker")
    fee_revenue, available = accounts(merchant)
    proposed = ledger_adjustment_propose(debit_account=fee_revenue, credit_account=available, amount_base_units=5,
                                         reason="typo", actor=maker)
    ledger_adjustment_reject(adjustment=proposed, actor=checker, note="wrong account")
    assert LedgerAdjustment.objects.get(pk=proposed.pk).status == "rejected"
    assert not JournalTransaction.objects.filter(kind="adjustment").exists()

    count = LedgerAdjustment.objects.count()
    for kwargs, param in ((dict(amount_base_units=0), "amount_base_units"),
                          (dict(credit_account=fee_revenue), "credit_account"),
                          (dict(reason=""), "reason")):
        with pytest.raises(DomainError) as refused:
            ledger_adjustment_propose(**{**dict(debit_account=fee_revenue, credit_account=available,
                                                amount_base_units=5, reason="r", actor=maker), **kwargs})
        assert refused.value.param == param
    assert LedgerAdjustment.objects.count() == count


def test_the_admin_proposes_and_a_second_member_approves(merchant, finance):
    maker, checker = finance("maker"), finance("checker")
    fee_revenue, available = accounts(merchant)
    as_maker, as_checker = Client(), Client()
    login_verified(as_maker, maker)
    login_verified(as_checker, checker)

    added = as_maker.post("/admin/settlements/ledgeradjustment/add/", {
        "debit_account": fee_revenue.pk, "credit_account": available.pk, "amount_base_units": "7",
        "reason": "goodwill credit"})
    assert added.status_code == 302, added.context["adminform"].form.errors
    adjustment = LedgerAdjustment.objects.get()
    assert adjustment.proposed_by == maker and adjustment.status == "proposed"
    same_asset = as_maker.post("/admin/settlements/ledgeradjustment/add/", {
        "debit_account": fee_revenue.pk, "credit_account": fee_revenue.pk, "amount_base_units": "7", "reason": "x"})
    assert same_asset.status_code == 200 and "credit_account" in same_asset.context["adminform"].form.errors

    approve = {"action": "approve", "_selected_action": [adjustment.pk], "apply": "1", "note": ""}
    as_maker.post("/admin/settlements/ledgeradjustment/", approve)
    assert LedgerAdjustment.objects.get().status == "proposed"
    as_checker.post("/admin/settlements/ledgeradjustment/", approve)
    assert LedgerAdjustment.objects.get().status == "approved"
    assert balance(AccountKind.MERCHANT_AVAILABLE, merchant=merchant) == -7
