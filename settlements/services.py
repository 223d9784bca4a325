"""Writes to the ledger (docs/ledger.md). Every movement is one journal transaction posted by
`journal_transaction_post`, in the caller's database transaction (its balance rows locked first by `balances_lock`
when the caller checks one before it posts); Charges reach the ledger through payments' queue
(`ledger_post_charge_facts`), each fact posted once whatever runs twice, concurrently or dies half-way."""
import logging
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.utils import timezone

from gateway.errors import DomainError
from gateway.fields import BaseUnitsField
from payments.ledger_outbox import charge_ledger_fact_claim, charge_ledger_fact_complete
from payments.models import Charge, ChargeDust, ChargeLedgerOutbox

from .fees import fee_split
from .models import (AccountKind, FeeSchedule, JournalTransaction, LedgerAccount, LedgerBalance, LedgerEntry,
                     LedgerHold, MerchantTerms)

logger = logging.getLogger(__name__)
Kind = JournalTransaction.Kind
CHARGE = "charge"
CHARGE_DUST = "charge_dust"  # source of the reversal of one dust transfer a Charge carries (source_id: its ChargeDust)


class LedgerError(DomainError):
    """A posting the ledger refuses (unbalanced, mixed assets, fewer than two entries): a bug in the caller."""

    def __init__(self, message: str):
        super().__init__(code="ledger_refused", message=message)


@dataclass(frozen=True)
class Posting:
    account: LedgerAccount
    amount: int  # base units: debit positive, credit negative


def ledger_account_get(*, kind: str, network_id: int, token_id: int | None, merchant_id: str | None = None,
                       address: str = "", livemode: bool) -> LedgerAccount:
    """The account (created with its running balance on first use; a concurrent creation wins and is read back)."""
    key = dict(kind=kind, network_id=network_id, token_id=token_id, merchant_id=merchant_id, address=address)
    account = LedgerAccount.objects.filter(**key).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            account = LedgerAccount.objects.create(livemode=livemode, **key)
            LedgerBalance.objects.create(account=account)
            return account
    except IntegrityError:
        return LedgerAccount.objects.get(**key)


def journal_transaction_post(*, kind: str, source_type: str, source_id: str, postings: list[Posting],
                             memo: str = "") -> tuple[JournalTransaction, bool]:
    """Post one journal transaction (its entries and running balances) in the caller's transaction; (journal, True).
    A source fact already posted is not posted again: (the existing journal, False). Zero postings are dropped; the
    rest must be at least two, of one asset, summing to zero (the database checks the same again at COMMIT)."""
    with transaction.atomic(savepoint=False):
        existing = JournalTransaction.objects.filter(source_type=source_type, source_id=source_id, kind=kind).first()
        if existing is not None:
            return existing, False
        postings = [p for p in postings if p.amount != 0]
        if len(postings) < 2:
            raise LedgerError(f"{kind} {source_type}:{source_id}: a journal transaction needs two or more entries")
        assets = {(p.account.network_id, p.account.token_id) for p in postings}
        if len(assets) != 1:
            raise LedgerError(f"{kind} {source_type}:{source_id}: entries in more than one asset {sorted(assets)}")
        if sum(p.amount for p in postings) != 0:
            raise LedgerError(f"{kind} {source_type}:{source_id}: entries sum to {sum(p.amount for p in postings)}")
        (network_id, token_id), = assets
        journal = JournalTransaction.objects.create(network_id=network_id, token_id=token_id, kind=kind,
                                                    source_type=source_type, source_id=source_id, memo=memo)
        LedgerEntry.objects.bulk_create(LedgerEntry(journal=journal, account=p.account, amount=p.amount)
                                        for p in postings)
        changes: dict[int, int] = {}
        for p in postings:
            changes[p.account.id] = changes.get(p.account.id, 0) + p.amount
        for account_id in sorted(changes):  # one order for every poster: concurrent postings never deadlock
            if changes[account_id]:
                LedgerBalance.objects.filter(account_id=account_id).update(
                    balance=F("balance") + Value(changes[account_id], output_field=BaseUnitsField()),
                    updated=timezone.now())
        return journal, True


def balances_lock(*accounts: LedgerAccount) -> dict[int, int]:
    """Lock the running balance rows (LedgerBalance, FOR UPDATE) of `accounts`, the ones a posting is about to touch,
    and return {account id: balance} as they are now. Locked in account id order, the order
    journal_transaction_post updates them in, so that a caller which checks a balance before it posts (is the
    merchant's available balance enough to reserve a payout or refund? does the hot wallet hold what a send takes?)
    never deadlocks with another poster, and two of them see each other's postings instead of both spending the same
    money. Whatever else a caller locks (a Charge, the hot SendingAddress) it locks before the balances: one order
    for every caller."""
    rows = LedgerBalance.objects.select_for_update().filter(account__in=accounts).order_by("account_id")
    return {row.account_id: row.balance for row in rows}


# Charges ------------------------------------------------------------------------------------------------------------

def _charge_accounts(charge: Charge, *kinds: str) -> dict[str, LedgerAccount]:
    """The accounts of the Charge's merchant and asset, of these kinds (one query once they exist)."""
    token = charge.transfer.token
    owner = lambda kind: charge.merchant_id if kind.startswith("merchant_") else None  # noqa: E731
    found = {a.kind: a for a in LedgerAccount.objects.filter(
        Q(merchant_id=charge.merchant_id) | Q(merchant__isnull=True), kind__in=kinds, network_id=token.network_id,
        token_id=token.id, address="",
    ) if a.merchant_id == owner(a.kind)}
    for kind in kinds:
        if kind not in found:
            found[kind] = ledger_account_get(kind=kind, network_id=token.network_id, token_id=token.id,
                                             merchant_id=owner(kind), livemode=token.network.livemode)
    return found


def _charge_journal(charge: Charge, kind: str) -> JournalTransaction | None:
    return JournalTransaction.objects.filter(source_type=CHARGE, source_id=charge.id, kind=kind).first()


def _charge_posted(charge: Charge, credit: JournalTransaction) -> dict[LedgerAccount, int]:
    """What the Charge's credit, less the dust reversals posted since, put in each account (zeros left out)."""
    dust_ids = [str(i) for i in ChargeDust.objects.filter(charge=charge).values_list("id", flat=True)]
    posted: dict[LedgerAccount, int] = {}
    for entry in LedgerEntry.objects.filter(
        Q(journal=credit) | Q(journal__source_type=CHARGE_DUST, journal__source_id__in=dust_ids,
                              journal__kind=Kind.CHARGE_REVERSAL),
    ).select_related("account").order_by("id"):
        posted[entry.account] = posted.get(entry.account, 0) + entry.amount
    return {account: amount for account, amount in posted.items() if amount}


def _credit_lock(charge: Charge) -> tuple[JournalTransaction, LedgerHold | None]:
    """The Charge's credit (posted first if it never was), locked, then its hold row: reversals of the Charge and of
    the dust it carries serialise on the credit, and with a release on the hold (the release consumer's order: hold,
    then journals; once we hold it, or once it is gone, nobody else releases this credit)."""
    credit = _charge_journal(charge, Kind.CHARGE_CREDIT) or charge_credit_post(charge=charge)
    credit = JournalTransaction.objects.select_for_update().get(pk=credit.pk)
    return credit, LedgerHold.objects.select_for_update().filter(credit=credit).first()


def _release(charge: Charge, pending: LedgerAccount, amount: int) -> None:
    """Move `amount` (what the Charge's credit put in `pending`) to the merchant's available account."""
    available = _charge_accounts(charge, AccountKind.MERCHANT_AVAILABLE)[AccountKind.MERCHANT_AVAILABLE]
    journal_transaction_post(kind=Kind.CHARGE_RELEASE, source_type=CHARGE, source_id=charge.id,
                             postings=[Posting(pending, amount), Posting(available, -amount)])


@transaction.atomic(savepoint=False)
def charge_credit_post(*, charge: Charge) -> JournalTransaction:
    """The ledger side of a succeeded Charge: the deposits account is debited with the base units of its transfer and
    of the dust transfers it carries, the merchant's pending credited with them less the fee (taken from the Charge's
    own transfer, as for a Charge that carries none), fee revenue with the fee. With no holding period the pending
    amount moves to available in a second journal transaction at once; otherwise a LedgerHold row releases it later.
    Posting a Charge again changes nothing."""
    transfer = charge.transfer
    own = transfer.amount_base_units
    dust = sum(ChargeDust.objects.filter(charge=charge).values_list("transfer__amount_base_units", flat=True))
    schedule = FeeSchedule.objects.filter(merchant_id=charge.merchant_id, token_id=transfer.token_id).first()
    fee, net = fee_split(amount=own, fee_bps=schedule.fee_bps if schedule else 0,
                         fee_fixed=schedule.fee_fixed_base_units if schedule else 0)
    net += dust
    kinds = [AccountKind.DEPOSITS, AccountKind.MERCHANT_PENDING] + ([AccountKind.FEE_REVENUE] if fee else [])
    accounts = _charge_accounts(charge, *kinds)
    credit, created = journal_transaction_post(
        kind=Kind.CHARGE_CREDIT, source_type=CHARGE, source_id=charge.id, memo=f"{charge.payment_intent_id}",
        postings=[Posting(accounts[AccountKind.DEPOSITS], own + dust),
                  Posting(accounts[AccountKind.MERCHANT_PENDING], -net)]
        + ([Posting(accounts[AccountKind.FEE_REVENUE], -fee)] if fee else []),
    )
    if not created or net == 0:
        return credit
    hold = MerchantTerms.objects.filter(merchant_id=charge.merchant_id).values_list("hold_seconds", flat=True).first()
    if hold:
        LedgerHold.objects.create(credit=credit, release_at=credit.created + timedelta(seconds=hold))
    else:
        _release(charge, accounts[AccountKind.MERCHANT_PENDING], net)
    return credit


@transaction.atomic(savepoint=False)
def charge_reversal_post(*, charge: Charge) -> JournalTransaction:
    """The exact negation of what the Charge's credit posted, less the dust reversals posted since (the credit is
    posted first if it never was). What the credit put in pending is taken back from available when it was released
    by then: the merchant's available balance may go negative (a payout must check it). Posting a reversal again
    changes nothing."""
    credit, held = _credit_lock(charge)
    released = _charge_journal(charge, Kind.CHARGE_RELEASE) is not None
    available = _charge_accounts(charge, AccountKind.MERCHANT_AVAILABLE)[AccountKind.MERCHANT_AVAILABLE] if released \
        else None
    negated: dict[LedgerAccount, int] = {}
    for account, amount in _charge_posted(charge, credit).items():
        account = available if released and account.kind == AccountKind.MERCHANT_PENDING else account
        negated[account] = negated.get(account, 0) - amount
    postings = [Posting(account, amount) for account, amount in negated.items()]
    reversal, _ = journal_transaction_post(kind=Kind.CHARGE_REVERSAL, source_type=CHARGE, source_id=charge.id,
                                           postings=postings)
    if held is not None:
        held.delete()
    return reversal


@transaction.atomic(savepoint=False)
def charge_dust_reversal_post(*, dust: ChargeDust) -> JournalTransaction | None:
    """One dust transfer its Charge carries left the chain: take its base units back, exactly as the credit posted
    them (deposits, and the merchant's pending, or available once released; dust bears no fee). None when the
    Charge's reversal is posted already (it took the dust back with the rest). Posting it again changes nothing."""
    charge = dust.charge
    credit, _held = _credit_lock(charge)
    if _charge_journal(charge, Kind.CHARGE_REVERSAL) is not None:
        return None
    kind = AccountKind.MERCHANT_AVAILABLE if _charge_journal(charge, Kind.CHARGE_RELEASE) else \
        AccountKind.MERCHANT_PENDING
    accounts = _charge_accounts(charge, AccountKind.DEPOSITS, kind)
    amount = dust.transfer.amount_base_units
    journal, _ = journal_transaction_post(
        kind=Kind.CHARGE_REVERSAL, source_type=CHARGE_DUST, source_id=str(dust.id), memo=charge.id,
        postings=[Posting(accounts[AccountKind.DEPOSITS], -amount), Posting(accounts[kind], amount)])
    return journal


def ledger_post_charge_facts(*, limit: int = 1000) -> int:
    """Consume payments' Charge-fact queue, oldest first: one transaction a row, the row deleted in the transaction
    that posts it (short transactions: every credit updates the deposits account's running balance). A row that fails
    stays for the next run and does not hold up the others. Safe to run concurrently (SKIP LOCKED, and the journal's
    unique source key) and to be killed anywhere. Returns the rows posted (at most `limit` a run)."""
    done = 0
    failed: set[int] = set()
    while done + len(failed) < limit:
        row = None
        try:
            with transaction.atomic():
                rows = charge_ledger_fact_claim(limit=1, exclude_ids=failed)
                if not rows:
                    break
                row = rows[0]
                if row.kind == ChargeLedgerOutbox.Kind.CREDIT:
                    charge_credit_post(charge=row.charge)
                elif row.kind == ChargeLedgerOutbox.Kind.DUST_REVERSAL:
                    charge_dust_reversal_post(dust=row.dust)
                else:
                    charge_reversal_post(charge=row.charge)
                charge_ledger_fact_complete(row_id=row.id)
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: stop here, the rest waits for the next run
        except Exception:
            if row is None:
                raise
            logger.exception("posting %s of charge %s to the ledger failed", row.kind, row.charge_id)
            failed.add(row.id)
            continue
        done += 1
    return done


def ledger_release_matured(*, now=None, limit: int = 1000) -> int:
    """Release the pending credits whose holding period is over (beat task), one transaction each. Safe to run
    concurrently and twice: the hold row goes away in the transaction that posts the release."""
    now = now or timezone.now()
    done = 0
    while done < limit:
        with transaction.atomic():
            hold = (LedgerHold.objects.select_for_update(skip_locked=True, of=("self",)).select_related("credit")
                    .filter(release_at__lte=now).order_by("release_at").first())
            if hold is None:
                break
            charge = Charge.objects.select_related("transfer__token__network").get(pk=hold.credit.source_id)
            # what the credit put in pending, less the dust reversals taken from it since
            pending = {a: v for a, v in _charge_posted(charge, hold.credit).items()
                       if a.kind == AccountKind.MERCHANT_PENDING}
            for account, amount in pending.items():
                _release(charge, account, -amount)
            hold.delete()
        done += 1
    return done


@transaction.atomic
def ledger_balances_rebuild() -> list[tuple[int, int, int]]:
    """Recompute every running balance from the entries, with postings held off meanwhile; returns the balances that
    were wrong as (account id, was, now)."""
    with connection.cursor() as cursor:
        cursor.execute("LOCK TABLE settlements_ledgerentry, settlements_ledgerbalance IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("""
            INSERT INTO settlements_ledgerbalance (account_id, balance, updated)
            SELECT a.id, 0, now() FROM settlements_ledgeraccount a
            WHERE NOT EXISTS (SELECT 1 FROM settlements_ledgerbalance b WHERE b.account_id = a.id)""")
        cursor.execute("""
            WITH sums AS (
                SELECT b.account_id, b.balance AS was, COALESCE(SUM(e.amount), 0) AS now
                FROM settlements_ledgerbalance b LEFT JOIN settlements_ledgerentry e ON e.account_id = b.account_id
                GROUP BY b.account_id, b.balance
            )
            UPDATE settlements_ledgerbalance b SET balance = sums.now, updated = now()
            FROM sums WHERE sums.account_id = b.account_id AND sums.was <> sums.now
            RETURNING b.account_id, sums.was, sums.now""")
        return sorted((account_id, int(was), int(now)) for account_id, was, now in cursor.fetchall())
