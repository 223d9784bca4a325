"""Charges reach the ledger: payments queues the fact in the Charge's transaction, the ledger posts it once."""
from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import ChargeLedgerOutbox
from settlements.models import AccountKind, JournalTransaction, LedgerEntry, LedgerHold
from settlements.selectors import ledger_balances, ledger_problems
from settlements.services import charge_credit_post, ledger_post_charge_facts, ledger_release_matured

from .conftest import ONE_USDT, balance, fees, hold, owed, paid_charge, reverse

pytestmark = pytest.mark.usefixtures("ledger_ready")


def entries_of(charge, kind):
    journal = JournalTransaction.objects.get(source_type="charge", source_id=charge.id, kind=kind)
    return sorted((e.account.kind, e.amount) for e in journal.entries.select_related("account"))


def snapshot():
    return (list(JournalTransaction.objects.order_by("id").values_list("id", flat=True)),
            sorted(LedgerEntry.objects.values_list("account_id", "amount")))


def test_a_succeeded_charge_is_queued_in_its_transaction_and_credited_once(merchant):
    charge = paid_charge(merchant, 10 * ONE_USDT)
    assert list(ChargeLedgerOutbox.objects.values_list("charge_id", "kind")) == [(charge.id, "credit")]
    assert not JournalTransaction.objects.exists()  # nothing posted until the ledger consumes the row

    assert ledger_post_charge_facts() == 1
    assert not ChargeLedgerOutbox.objects.exists()
    assert entries_of(charge, "charge_credit") == [
        ("deposits", 10 * ONE_USDT), ("merchant_pending", -10 * ONE_USDT)]
    # no holding period: released to available at once, in a second journal transaction
    assert entries_of(charge, "charge_release") == [
        ("merchant_available", -10 * ONE_USDT), ("merchant_pending", 10 * ONE_USDT)]
    assert owed(merchant) == {"pending": 0, "available": 10 * ONE_USDT}
    [mine] = ledger_balances(merchant=merchant, livemode=False)
    assert (mine.token, mine.pending, mine.available, mine.reserved) == ("usdt", 0, 10 * ONE_USDT, 0)
    assert ledger_balances(merchant=merchant, livemode=True) == []

    before = snapshot()
    assert ledger_post_charge_facts() == 0
    charge_credit_post(charge=charge)  # posting the fact again, directly: a no-op
    assert snapshot() == before
    assert ledger_problems() == []


def test_the_fee_is_taken_at_credit_time(merchant):
    fees(merchant, bps=150, fixed=3)  # 1.5% + 3 base units
    amount = ONE_USDT + 1
    charge = paid_charge(merchant, amount)
    ledger_post_charge_facts()
    fee = 15 * ONE_USDT // 1000 + 3  # 1.5% of amount is 0.015 USDT + 0.015 base units: rounded down
    assert entries_of(charge, "charge_credit") == [
        ("deposits", amount), ("fee_revenue", -fee), ("merchant_pending", -(amount - fee))]
    assert owed(merchant)["available"] == amount - fee and balance(AccountKind.FEE_REVENUE) == -fee


def test_a_fee_larger_than_the_charge_takes_all_of_it_and_no_more(merchant):
    fees(merchant, fixed=5 * ONE_USDT)
    charge = paid_charge(merchant, 2 * ONE_USDT)
    ledger_post_charge_facts()
    assert entries_of(charge, "charge_credit") == [("deposits", 2 * ONE_USDT), ("fee_revenue", -2 * ONE_USDT)]
    assert owed(merchant) == {"pending": 0, "available": 0}
    reverse(charge)
    ledger_post_charge_facts()
    assert entries_of(charge, "charge_reversal") == [("deposits", -2 * ONE_USDT), ("fee_revenue", 2 * ONE_USDT)]
    assert balance(AccountKind.FEE_REVENUE) == 0 and ledger_problems() == []


def test_a_reversal_posts_exactly_the_negation_of_the_credit(merchant):
    fees(merchant, bps=250, fixed=1)
    charge = paid_charge(merchant, 7 * ONE_USDT + 3)
    ledger_post_charge_facts()
    reverse(charge)
    assert ChargeLedgerOutbox.objects.filter(kind="reversal").count() == 1
    ledger_post_charge_facts()
    credit = entries_of(charge, "charge_credit")
    reversal = entries_of(charge, "charge_reversal")
    # released at once, so what went to pending comes back out of available
    swap = {"merchant_pending": "merchant_available"}
    assert sorted((swap.get(kind, kind), -amount) for kind, amount in credit) == reversal
    assert owed(merchant) == {"pending": 0, "available": 0}
    assert balance(AccountKind.DEPOSITS) == 0 and balance(AccountKind.FEE_REVENUE) == 0
    assert ledger_problems() == []


def test_credit_and_reversal_queued_together_are_posted_in_order(merchant):
    charge = paid_charge(merchant, ONE_USDT)
    reverse(charge)
    assert list(ChargeLedgerOutbox.objects.order_by("id").values_list("kind", flat=True)) == ["credit", "reversal"]
    assert ledger_post_charge_facts() == 2
    assert owed(merchant) == {"pending": 0, "available": 0} and balance(AccountKind.DEPOSITS) == 0
    assert JournalTransaction.objects.filter(source_id=charge.id).count() == 3  # credit, release, reversal


def test_the_holding_period_keeps_a_credit_pending_until_it_is_over(merchant):
    hold(merchant, 3600)
    charge = paid_charge(merchant, 4 * ONE_USDT)
    ledger_post_charge_facts()
    assert owed(merchant) == {"pending": 4 * ONE_USDT, "available": 0}
    held = LedgerHold.objects.get()
    assert held.credit.source_id == charge.id
    assert held.release_at == held.credit.created + timedelta(hours=1)

    assert ledger_release_matured(now=timezone.now() + timedelta(minutes=59)) == 0
    assert owed(merchant) == {"pending": 4 * ONE_USDT, "available": 0}

    assert ledger_release_matured(now=timezone.now() + timedelta(hours=1, seconds=1)) == 1
    assert owed(merchant) == {"pending": 0, "available": 4 * ONE_USDT}
    assert not LedgerHold.objects.exists()
    assert ledger_release_matured(now=timezone.now() + timedelta(days=1)) == 0  # again: nothing

    reverse(charge)  # after the release: taken back from available
    ledger_post_charge_facts()
    assert owed(merchant) == {"pending": 0, "available": 0} and ledger_problems() == []


def test_a_charge_reversed_while_pending_is_taken_back_from_pending_and_never_released(merchant):
    hold(merchant, 3600)
    charge = paid_charge(merchant, 4 * ONE_USDT)
    kept = paid_charge(merchant, ONE_USDT)
    ledger_post_charge_facts()
    reverse(charge)
    ledger_post_charge_facts()
    assert owed(merchant) == {"pending": ONE_USDT, "available": 0}
    assert [h.credit.source_id for h in LedgerHold.objects.all()] == [kept.id]
    assert ledger_release_matured(now=timezone.now() + timedelta(hours=2)) == 1
    assert owed(merchant) == {"pending": 0, "available": ONE_USDT}
    assert not JournalTransaction.objects.filter(source_id=charge.id, kind="charge_release").exists()


def test_a_reversal_after_the_release_may_leave_available_negative(merchant):
    charge = paid_charge(merchant, 3 * ONE_USDT)
    ledger_post_charge_facts()
    # the money left (a payout, later): simulated by moving it to reserved
    from settlements.services import Posting, journal_transaction_post, ledger_account_get
    t = charge.transfer.token
    get = lambda kind: ledger_account_get(kind=kind, network_id=t.network_id, token_id=t.id,  # noqa: E731
                                          merchant_id=merchant.id, livemode=False)
    journal_transaction_post(kind="adjustment", source_type="test", source_id="payout", postings=[
        Posting(get(AccountKind.MERCHANT_AVAILABLE), 3 * ONE_USDT),
        Posting(get(AccountKind.MERCHANT_RESERVED), -3 * ONE_USDT)])
    reverse(charge)
    ledger_post_charge_facts()
    assert owed(merchant)["available"] == -3 * ONE_USDT  # the merchant owes it back; payouts must check
    assert ledger_problems() == []


def test_a_merchant_sees_only_its_own_balances(merchant):
    from tests.merchants.factories import MerchantFactory
    other = MerchantFactory()
    paid_charge(merchant, ONE_USDT)
    paid_charge(other, 2 * ONE_USDT)
    ledger_post_charge_facts()
    assert [b.available for b in ledger_balances(merchant=merchant, livemode=False)] == [ONE_USDT]
    assert [b.available for b in ledger_balances(merchant=other, livemode=False)] == [2 * ONE_USDT]
    assert balance(AccountKind.DEPOSITS) == 3 * ONE_USDT
