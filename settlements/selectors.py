"""Reads of the ledger: a merchant's balances, its balance transactions, its payouts, and the checks of
`manage.py ledger check`."""
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery

from payments.pricing import minor_from_base_units

from .models import (AccountKind, JournalTransaction, LedgerBalance, LedgerEntry, LedgerHold, Payout,
                     PayoutAddress)


@dataclass
class MerchantBalance:
    """What the gateway owes a merchant in one asset, per account (positive: owed to the merchant)."""
    network: str  # the network's code
    token: str  # the token's currency, or "native"
    pending: int = 0
    available: int = 0
    reserved: int = 0
    fees: int = 0


_FIELDS = {AccountKind.MERCHANT_PENDING: "pending", AccountKind.MERCHANT_AVAILABLE: "available",
           AccountKind.MERCHANT_RESERVED: "reserved", AccountKind.MERCHANT_FEES: "fees"}


def ledger_balances(*, merchant, livemode: bool) -> list[MerchantBalance]:
    """The merchant's running balances in this mode, one per asset it has an account in (by network, token)."""
    rows = (LedgerBalance.objects.filter(account__merchant=merchant, account__livemode=livemode)
            .select_related("account__network", "account__token").order_by("account__network__code",
                                                                            "account__token__currency"))
    balances: dict[tuple[str, str], MerchantBalance] = {}
    for row in rows:
        account = row.account
        key = (account.network.code, account.token.currency if account.token_id else "native")
        balance = balances.setdefault(key, MerchantBalance(*key))
        # Merchant accounts are liabilities (credit-normal, negative): what the merchant is owed is the negation.
        setattr(balance, _FIELDS[account.kind], -row.balance)
    return list(balances.values())


CHECKS = {
    "unbalanced journal transaction": """
        SELECT j.id, j.kind || ' ' || j.source_type || ':' || j.source_id || ' sums to ' || COALESCE(SUM(e.amount), 0)
               || ' over ' || COUNT(e.id) || ' entries'
        FROM settlements_journaltransaction j LEFT JOIN settlements_ledgerentry e ON e.journal_id = j.id
        GROUP BY j.id HAVING COALESCE(SUM(e.amount), 0) <> 0 OR COUNT(e.id) < 2 ORDER BY j.id""",
    "entry in another asset than its journal transaction": """
        SELECT e.id, 'journal ' || j.id || ' asset ' || j.network_id || '/' || COALESCE(j.token_id::text, 'native')
               || ', account ' || a.id || ' asset ' || a.network_id || '/' || COALESCE(a.token_id::text, 'native')
        FROM settlements_ledgerentry e JOIN settlements_journaltransaction j ON j.id = e.journal_id
        JOIN settlements_ledgeraccount a ON a.id = e.account_id
        WHERE a.network_id <> j.network_id OR a.token_id IS DISTINCT FROM j.token_id ORDER BY e.id""",
    "running balance differs from the entries": """
        SELECT a.id, a.kind || ' ' || COALESCE(a.merchant_id, a.address, '') || ': running '
               || COALESCE(b.balance::text, 'missing') || ', entries ' || COALESCE(s.total, 0)
        FROM settlements_ledgeraccount a
        LEFT JOIN settlements_ledgerbalance b ON b.account_id = a.id
        LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM settlements_ledgerentry GROUP BY account_id) s
               ON s.account_id = a.id
        WHERE b.balance IS DISTINCT FROM COALESCE(s.total, 0) ORDER BY a.id""",
    "asset whose accounts do not sum to zero": """
        SELECT a.network_id, 'network ' || a.network_id || ' token ' || COALESCE(a.token_id::text, 'native')
               || ' sums to ' || SUM(e.amount)
        FROM settlements_ledgerentry e JOIN settlements_ledgeraccount a ON a.id = e.account_id
        GROUP BY a.network_id, a.token_id HAVING SUM(e.amount) <> 0""",
}


def ledger_problems() -> list[str]:
    """Everything `manage.py ledger check` reports, read in one snapshot (so postings running meanwhile are seen
    whole or not at all): journal transactions that do not balance, entries in another asset than their journal
    transaction, running balances that differ from the sum of their entries, assets that do not sum to zero."""
    problems = []
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for what, sql in CHECKS.items():
            cursor.execute(sql)
            problems += [f"{what}: {row_id}: {detail}" for row_id, detail in cursor.fetchall()]
    return problems


# Balance and balance transactions (GET /v1/balance, /v1/balance_transactions) ------------------------------------

def minor_toward_zero(*, amount_base_units: int, currency: str, decimals: int) -> int:
    """Base units of a stablecoin pegged to `currency` in its minor units, rounded toward zero (payments.pricing's
    rule, round down, applied to the magnitude): what is shown is never more than what is there."""
    minor = minor_from_base_units(amount_base_units=abs(amount_base_units), currency=currency, token_decimals=decimals)
    return -minor if amount_base_units < 0 else minor


@dataclass
class AssetBalance:
    network: str  # the API network name
    token_currency: str
    decimals: int
    pending: int = 0  # base units, owed to the merchant
    available: int = 0
    reserved: int = 0


@dataclass
class MerchantFiatBalance:
    currency: str
    assets: list[AssetBalance] = field(default_factory=list)
    pending: int = 0  # minor units: the sum of each asset's amount rounded toward zero
    available: int = 0
    reserved: int = 0


_BALANCE_FIELDS = {AccountKind.MERCHANT_PENDING: "pending", AccountKind.MERCHANT_AVAILABLE: "available",
                   AccountKind.MERCHANT_RESERVED: "reserved"}


def merchant_fiat_balances(*, merchant, livemode: bool) -> list[MerchantFiatBalance]:
    """What the gateway owes the merchant in this mode, per pegged fiat currency, with each asset in base units.
    Floating-price tokens (no pegged currency) and native coins are not shown."""
    rows = (LedgerBalance.objects.filter(account__merchant=merchant, account__livemode=livemode,
                                         account__kind__in=list(_BALANCE_FIELDS), account__token__isnull=False)
            .exclude(account__token__pegged_currency="")
            .select_related("account__network", "account__token")
            .order_by("account__token__pegged_currency", "account__network__api_name", "account__token__currency"))
    currencies: dict[str, MerchantFiatBalance] = {}
    assets: dict[tuple, AssetBalance] = {}
    for row in rows:
        account = row.account
        token = account.token
        fiat = currencies.setdefault(token.pegged_currency, MerchantFiatBalance(currency=token.pegged_currency))
        key = (account.network_id, token.id)
        if key not in assets:
            assets[key] = AssetBalance(network=account.network.api_name, token_currency=token.currency,
                                       decimals=token.decimals)
            fiat.assets.append(assets[key])
        setattr(assets[key], _BALANCE_FIELDS[account.kind], -row.balance)  # liabilities: owed = -balance
    for fiat in currencies.values():
        for name in _BALANCE_FIELDS.values():
            setattr(fiat, name, sum(minor_toward_zero(amount_base_units=getattr(a, name), currency=fiat.currency,
                                                      decimals=a.decimals) for a in fiat.assets))
    return list(currencies.values())


# Journal kind -> (balance transaction type, reporting category). A journal transaction of one of these kinds that
# has an entry in one of the merchant's accounts is one balance transaction. Refunds add their kinds here.
BALANCE_TRANSACTION_TYPES: dict[str, tuple[str, str]] = {
    JournalTransaction.Kind.CHARGE_CREDIT: ("charge", "charge"),
    JournalTransaction.Kind.CHARGE_REVERSAL: ("adjustment", "charge_reversal"),
    JournalTransaction.Kind.ADJUSTMENT: ("adjustment", "other_adjustment"),
    JournalTransaction.Kind.PAYOUT_RESERVE: ("payout", "payout"),
    JournalTransaction.Kind.PAYOUT_FAILURE: ("payout_failure", "payout_reversal"),
    JournalTransaction.Kind.PAYOUT_CANCEL: ("payout_cancel", "payout_reversal"),
    # settlements.refunds (its kinds, source `re_...`): a refund leaves the balance when it is reserved, and comes
    # back when it fails or is canceled (a refund of an unmatched deposit never touches the spendable accounts)
    "refund_reserve": ("refund", "refund"),
    "refund_release": ("refund_failure", "refund_failure"),
}
TYPE_KINDS: dict[str, list[str]] = {}
for _kind, (_type, _category) in BALANCE_TRANSACTION_TYPES.items():
    TYPE_KINDS.setdefault(_type, []).append(_kind)
# The merchant's spendable side: a movement between these and the outside is what a balance transaction shows (a
# move into `merchant_reserved` is money leaving the balance; one out of it to in_transit is not the merchant's).
_SPENDABLE = (AccountKind.MERCHANT_PENDING, AccountKind.MERCHANT_AVAILABLE, AccountKind.MERCHANT_FEES)
CHARGE_DUST = "charge_dust"


@dataclass
class BalanceTransaction:
    id: str
    journal_id: int
    created: datetime
    type: str
    reporting_category: str
    source: str
    currency: str
    network: str
    token_currency: str
    amount: int  # minor units: net + fee
    fee: int
    net: int
    amount_base_units: int
    fee_base_units: int
    net_base_units: int
    status: str
    available_on: datetime
    description: str | None


def balance_transaction_journals(*, merchant, livemode: bool):
    """The journal transactions that are the merchant's balance transactions (a queryset, for filters and keyset
    pagination on (created, id))."""
    touches = LedgerEntry.objects.filter(journal=OuterRef("pk"), account__merchant=merchant,
                                         account__livemode=livemode, account__kind__in=_SPENDABLE)
    return (JournalTransaction.objects.filter(kind__in=list(BALANCE_TRANSACTION_TYPES), token__isnull=False)
            .filter(Exists(touches)).select_related("network", "token"))


def balance_transaction_source_filter(source: str) -> Q:
    return Q(source_id=source) & ~Q(source_type=CHARGE_DUST) | Q(source_type=CHARGE_DUST, memo=source)


def balance_transaction_journal_id(txn_id: str) -> int | None:
    """The journal id in `txn_<id>`, or None for an id of another shape."""
    digits = txn_id.removeprefix("txn_")
    return int(digits) if txn_id.startswith("txn_") and digits.isascii() and digits.isdigit() \
        and len(digits) < 19 else None


def balance_transactions_present(journals) -> list[BalanceTransaction]:
    """The balance transactions of these journal transactions (one query for their entries, one for the holds and
    releases of the charges among them)."""
    journals = list(journals)
    entries: dict[int, list[LedgerEntry]] = {}
    for entry in LedgerEntry.objects.filter(journal__in=journals).select_related("account"):
        entries.setdefault(entry.journal_id, []).append(entry)
    credits = [j for j in journals if j.kind == JournalTransaction.Kind.CHARGE_CREDIT]
    holds = {h.credit_id: h.release_at for h in LedgerHold.objects.filter(credit__in=credits)}
    releases = dict(JournalTransaction.objects.filter(
        kind=JournalTransaction.Kind.CHARGE_RELEASE, source_type="charge",
        source_id__in=[c.source_id for c in credits]).values_list("source_id", "created"))
    result = []
    for journal in journals:
        rows = entries.get(journal.id, [])
        net = -sum(e.amount for e in rows if e.account.kind in _SPENDABLE)
        fee = -sum(e.amount for e in rows if e.account.kind == AccountKind.FEE_REVENUE)
        token = journal.token
        currency = token.pegged_currency or "usd"
        minor = lambda v: minor_toward_zero(amount_base_units=v, currency=currency, decimals=token.decimals)  # noqa
        net_minor, amount_minor = minor(net), minor(net + fee)
        kind_type, category = BALANCE_TRANSACTION_TYPES[journal.kind]
        status, available_on = "available", journal.created
        if journal.kind == JournalTransaction.Kind.CHARGE_CREDIT:
            if journal.source_id in releases:
                available_on = releases[journal.source_id]
            elif journal.id in holds:
                status, available_on = "pending", holds[journal.id]
            elif net:  # reversed before its release: never becomes available
                status = "pending"
        result.append(BalanceTransaction(
            id=f"txn_{journal.id}", journal_id=journal.id, created=journal.created, type=kind_type,
            reporting_category=category,
            source=journal.memo if journal.source_type == CHARGE_DUST else journal.source_id,
            currency=currency, network=journal.network.api_name, token_currency=token.currency,
            amount=amount_minor, fee=amount_minor - net_minor, net=net_minor, amount_base_units=net + fee,
            fee_base_units=fee, net_base_units=net, status=status, available_on=available_on,
            description=journal.memo if journal.kind == JournalTransaction.Kind.ADJUSTMENT else None,
        ))
    return result


# Payouts --------------------------------------------------------------------------------------------------------

def payouts_for(*, merchant, livemode: bool):
    journal = lambda kinds: Subquery(JournalTransaction.objects.filter(  # noqa: E731
        source_type="payout", source_id=OuterRef("pk"), kind__in=kinds).values("id")[:1])
    return (Payout.objects.filter(merchant=merchant, livemode=livemode)
            .select_related("network", "token", "outgoing_transaction__mined_attempt",
                            "outgoing_transaction__current_attempt")
            .annotate(reserve_journal_id=journal([JournalTransaction.Kind.PAYOUT_RESERVE]),
                      failure_journal_id=journal([JournalTransaction.Kind.PAYOUT_FAILURE,
                                                  JournalTransaction.Kind.PAYOUT_CANCEL])))


def payout_get(*, merchant, livemode: bool, payout_id: str) -> Payout | None:
    return payouts_for(merchant=merchant, livemode=livemode).filter(pk=payout_id).first()


def payout_cursor(*, merchant, livemode: bool, payout_id: str) -> Payout | None:
    return Payout.objects.filter(merchant=merchant, livemode=livemode, pk=payout_id).only("id", "created").first()


def payout_addresses_for(*, merchant):
    return (PayoutAddress.objects.filter(merchant=merchant, removed_at__isnull=True)
            .select_related("network", "token").order_by("livemode", "network__api_name", "token__currency"))
