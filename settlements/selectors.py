"""Reads of the ledger: a merchant's balances, and the checks of `manage.py ledger check`."""
from dataclasses import dataclass

from django.db import connection, transaction

from .models import AccountKind, LedgerBalance


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
