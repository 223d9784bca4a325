"""Dust (a final transfer worth less than one minor unit: no Charge of its own) reaches the ledger with the next Charge
of the intent in its token, exactly once; a reorg takes back exactly what was posted for it."""
import itertools
import random
from collections import Counter
from datetime import timedelta

import pytest
from django.db.models import Q, Sum
from django.utils import timezone

from payments import funding
from payments.models import Charge, ChargeDust, ChargeLedgerOutbox, PaymentIntent, UnmatchedDeposit
from settlements.models import AccountKind, JournalTransaction, LedgerEntry
from settlements.selectors import ledger_problems
from settlements.services import charge_dust_reversal_post, ledger_post_charge_facts, ledger_release_matured
from wallets.models import AddressActivity, Transfer

from .conftest import ONE_USDT, balance, bsc, fees, hold, intent_for, owed, token

pytestmark = pytest.mark.usefixtures("ledger_ready")
_tx = itertools.count(10_000)
DUST = 4 * ONE_USDT // 1000  # 0.004 USDT: less than a cent


def send(intent, amount, *, currency="usdt", final=True) -> Transfer:
    """A transfer to the intent's address, recorded as the scanner records it, and applied."""
    transfer = Transfer.objects.create(
        network=bsc(), token=token(currency), tx_hash=f"0x{next(_tx):064x}", log_index=0, block_number=100,
        block_hash="0x" + "1" * 64, from_address="0x" + "b" * 40, to_address=intent.deposit_address.address,
        deposit_address=intent.deposit_address, amount_base_units=amount,
        finalized_at=timezone.now() if final else None)
    apply(transfer)
    return transfer


def apply(transfer: Transfer) -> None:
    AddressActivity.objects.create(deposit_address_id=transfer.deposit_address_id)
    funding.address_activity_process()


def orphan(*transfers: Transfer) -> None:
    Transfer.objects.filter(pk__in=[t.pk for t in transfers]).update(orphaned_at=timezone.now())
    apply(transfers[0])


def posted(intent, account_kind=AccountKind.DEPOSITS, currency="usdt") -> int:
    """What the ledger posted to accounts of this kind for the intent's Charges and the dust they carry."""
    charges = [c for c in Charge.objects.filter(payment_intent=intent).values_list("id", flat=True)]
    dust = [str(i) for i in ChargeDust.objects.filter(charge__payment_intent=intent).values_list("id", flat=True)]
    return LedgerEntry.objects.filter(
        Q(journal__source_type="charge", journal__source_id__in=charges)
        | Q(journal__source_type="charge_dust", journal__source_id__in=dust),
        account__kind=account_kind, account__token=token(currency),
    ).aggregate(s=Sum("amount"))["s"] or 0


def credited(intent, currency="usdt") -> int:
    """The base units of the intent's final live transfers credited to it: those of its succeeded Charges and the
    dust these carry."""
    total = 0
    for charge in Charge.objects.filter(payment_intent=intent, status="succeeded", transfer__token=token(currency)):
        total += charge.transfer.amount_base_units
        total += sum(d.transfer.amount_base_units for d in ChargeDust.objects.filter(charge=charge)
                     if d.transfer.orphaned_at is None)
    return total


def test_dust_then_a_payment_credits_the_sum_of_their_base_units(merchant):
    fees(merchant, bps=100)  # 1%, of the Charge's own transfer
    intent = intent_for(merchant, 1000)
    dust = send(intent, DUST)
    assert not Charge.objects.exists() and not ChargeLedgerOutbox.objects.exists()
    paid = send(intent, 10 * ONE_USDT)
    charge = Charge.objects.get()
    assert (charge.transfer_id, charge.amount) == (paid.id, 1000)
    assert list(ChargeDust.objects.values_list("charge_id", "transfer_id")) == [(charge.id, dust.id)]

    assert ledger_post_charge_facts() == 1
    fee = 10 * ONE_USDT // 100
    assert balance(AccountKind.DEPOSITS) == 10 * ONE_USDT + DUST == posted(intent) == credited(intent)
    assert owed(merchant) == {"pending": 0, "available": 10 * ONE_USDT - fee + DUST}
    assert balance(AccountKind.FEE_REVENUE) == -fee

    # applying and consuming again: the dust is not carried twice, nothing more is posted
    before = list(LedgerEntry.objects.order_by("id").values_list("id", flat=True))
    apply(paid)
    send(intent, 2 * ONE_USDT)  # a later Charge carries no dust
    assert ledger_post_charge_facts() == 1
    assert ChargeDust.objects.count() == 1
    assert balance(AccountKind.DEPOSITS) == 12 * ONE_USDT + DUST == posted(intent) == credited(intent)
    assert LedgerEntry.objects.filter(id__in=before).count() == len(before)
    assert ledger_problems() == []


def test_dust_in_another_token_waits_for_a_charge_in_its_token(merchant):
    intent = intent_for(merchant, 100_000)
    usdc_dust = send(intent, DUST, currency="usdc")
    send(intent, ONE_USDT)  # a USDT Charge cannot carry USDC (one journal transaction is one asset)
    assert not ChargeDust.objects.exists()
    send(intent, ONE_USDT, currency="usdc")
    assert ChargeDust.objects.get().transfer_id == usdc_dust.id
    ledger_post_charge_facts()
    assert balance(AccountKind.DEPOSITS, currency="usdc") == ONE_USDT + DUST == credited(intent, "usdc")
    assert balance(AccountKind.DEPOSITS) == ONE_USDT == credited(intent)
    assert ledger_problems() == []


@pytest.mark.parametrize("hold_seconds", [0, 3600])
def test_orphaned_dust_after_its_charge_was_posted_is_taken_back_exactly(merchant, hold_seconds):
    hold(merchant, hold_seconds)
    fees(merchant, bps=100, fixed=1)
    intent = intent_for(merchant, 1000)
    dust = send(intent, DUST)
    paid = send(intent, 10 * ONE_USDT)
    charge = Charge.objects.get()
    ledger_post_charge_facts()
    net = 10 * ONE_USDT - (10 * ONE_USDT // 100 + 1)

    orphan(dust)
    charge.refresh_from_db()
    assert charge.status == "succeeded" and charge.amount == 1000  # the Charge keeps its cents
    assert ChargeDust.objects.get().reversed
    assert list(ChargeLedgerOutbox.objects.values_list("kind", flat=True)) == ["dust_reversal"]
    apply(paid)  # applying again queues nothing more
    assert ChargeLedgerOutbox.objects.count() == 1
    assert ledger_post_charge_facts() == 1
    assert balance(AccountKind.DEPOSITS) == 10 * ONE_USDT == posted(intent) == credited(intent)
    where = "pending" if hold_seconds else "available"
    assert owed(merchant)[where] == net
    assert charge_dust_reversal_post(dust=ChargeDust.objects.get()) is not None  # again, directly: a no-op
    assert balance(AccountKind.DEPOSITS) == 10 * ONE_USDT

    # the release moves what is left in pending; the Charge's reversal takes back the rest, not the dust again
    assert ledger_release_matured(now=timezone.now() + timedelta(hours=2)) == (1 if hold_seconds else 0)
    assert owed(merchant) == {"pending": 0, "available": net}
    orphan(paid)
    ledger_post_charge_facts()
    assert owed(merchant) == {"pending": 0, "available": 0}
    assert balance(AccountKind.DEPOSITS) == 0 == posted(intent) == credited(intent)
    assert balance(AccountKind.FEE_REVENUE) == 0 and ledger_problems() == []


def test_dust_orphaned_while_the_charge_is_held_is_taken_from_pending(merchant):
    hold(merchant, 3600)
    intent = intent_for(merchant, 1000)
    dust = send(intent, DUST)
    send(intent, 10 * ONE_USDT)
    ledger_post_charge_facts()
    assert owed(merchant) == {"pending": 10 * ONE_USDT + DUST, "available": 0}
    orphan(dust)
    ledger_post_charge_facts()
    assert owed(merchant) == {"pending": 10 * ONE_USDT, "available": 0}
    assert ledger_release_matured(now=timezone.now() + timedelta(hours=2)) == 1
    assert owed(merchant) == {"pending": 0, "available": 10 * ONE_USDT}
    assert ledger_problems() == []


@pytest.mark.parametrize("consume_between", [False, True])
def test_dust_and_its_charge_orphaned_together_are_taken_back_once(merchant, consume_between):
    intent = intent_for(merchant, 1000)
    dust = send(intent, DUST)
    paid = send(intent, 10 * ONE_USDT)
    if consume_between:
        ledger_post_charge_facts()
    orphan(dust, paid)
    # the Charge's reversal takes the dust back with the rest: no separate dust fact
    assert not ChargeDust.objects.get().reversed
    ledger_post_charge_facts()
    assert balance(AccountKind.DEPOSITS) == 0 == posted(intent) == credited(intent)
    assert owed(merchant) == {"pending": 0, "available": 0} and ledger_problems() == []


def test_a_dust_reversal_queued_before_the_charges_reversal_is_not_taken_back_twice(merchant):
    intent = intent_for(merchant, 1000)
    dust = send(intent, DUST)
    paid = send(intent, 10 * ONE_USDT)
    orphan(dust)
    orphan(paid)
    assert list(ChargeLedgerOutbox.objects.order_by("id").values_list("kind", flat=True)) == [
        "credit", "dust_reversal", "reversal"]
    assert ledger_post_charge_facts() == 3
    assert balance(AccountKind.DEPOSITS) == 0 == posted(intent)
    assert owed(merchant) == {"pending": 0, "available": 0} and ledger_problems() == []


def test_carried_dust_of_an_expired_intent_is_not_also_an_unmatched_deposit(merchant):
    from payments.services import payment_intent_expire

    intent = intent_for(merchant, 5000)
    dust = send(intent, DUST)
    send(intent, 10 * ONE_USDT)  # short: the intent waits
    PaymentIntent.objects.filter(pk=intent.pk).update(expires_at=timezone.now())
    assert payment_intent_expire(intent_id=intent.pk) is not None
    apply(dust)
    intent.refresh_from_db()
    assert intent.status == "canceled"
    assert not UnmatchedDeposit.objects.exists()  # the dust is credited (carried), not a refund as well
    ledger_post_charge_facts()
    assert balance(AccountKind.DEPOSITS) == 10 * ONE_USDT + DUST == credited(intent)


@pytest.mark.parametrize("seed", range(12))
def test_posted_deposits_of_an_intent_equal_its_final_live_credited_transfers(merchant, seed):
    """Property: whatever the sequence of dust, payments in two tokens, finality, reorgs and ledger runs, the
    deposits the ledger posted for an intent equal the base units of its final live transfers credited to it (its
    succeeded Charges' own and the live dust they carry), per token, and so do the merchant's and the fee accounts."""
    rng = random.Random(seed)
    fees(merchant, bps=rng.choice([0, 250]), fixed=rng.choice([0, 7]))
    hold(merchant, rng.choice([0, 3600]))
    intent = intent_for(merchant, 10**7)
    transfers: list[Transfer] = []
    for _ in range(40):
        op = rng.choices(["dust", "pay", "finalize", "orphan", "post", "release"], weights=[30, 15, 15, 15, 15, 5])[0]
        if op in ("dust", "pay"):
            amount = rng.randint(1, 9_999 * ONE_USDT // 10**6) if op == "dust" else rng.randint(1, 5 * ONE_USDT)
            transfers.append(send(intent, amount, currency=rng.choice(["usdt", "usdc"]), final=rng.random() < 0.7))
        elif op == "finalize" and (waiting := [t for t in transfers if t.finalized_at is None]):
            t = rng.choice(waiting)
            t.finalized_at = timezone.now()
            Transfer.objects.filter(pk=t.pk).update(finalized_at=t.finalized_at)
            apply(t)
        elif op == "orphan" and (live := [t for t in transfers if t.orphaned_at is None]):
            t = rng.choice(live)
            t.orphaned_at = timezone.now()
            orphan(t)
        elif op == "post":
            ledger_post_charge_facts()
        elif op == "release":
            ledger_release_matured(now=timezone.now() + timedelta(hours=2))
    ledger_post_charge_facts()
    for currency in ("usdt", "usdc"):
        assert posted(intent, currency=currency) == credited(intent, currency)
        merchant_side = sum(posted(intent, kind, currency) for kind in (
            AccountKind.MERCHANT_PENDING, AccountKind.MERCHANT_AVAILABLE, AccountKind.FEE_REVENUE))
        assert merchant_side == -credited(intent, currency)
    # a transfer is credited once at a time: by its own succeeded Charge or carried by one, never both or twice
    charged = set(Charge.objects.filter(status="succeeded").values_list("transfer_id", flat=True))
    carried = list(ChargeDust.objects.filter(charge__status="succeeded").values_list("transfer_id", flat=True))
    assert len(carried) == len(set(carried)) and not charged & set(carried)
    assert not UnmatchedDeposit.objects.filter(transfer_id__in=charged | set(carried)).exists()
    assert not JournalTransaction.objects.filter(source_type="charge_dust", kind="charge_credit").exists()
    assert Counter(ChargeLedgerOutbox.objects.values_list("kind", flat=True)) == Counter()
    assert ledger_problems() == []
