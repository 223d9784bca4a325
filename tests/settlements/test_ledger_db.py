"""What the database guarantees by itself, whatever writes to it: journal transactions balance at COMMIT (a raw
INSERT cannot get around it) and ledger rows are append-only. These tests commit, as production does."""
import pytest
from django.db import DatabaseError, connection, transaction

from settlements.models import AccountKind, JournalTransaction, LedgerBalance, LedgerEntry
from settlements.services import LedgerError, Posting, journal_transaction_post, ledger_account_get

from .conftest import token

pytestmark = pytest.mark.usefixtures("ledger_ready")


@pytest.fixture
def accounts(transactional_db, ledger_ready):
    usdt = token("usdt")
    get = lambda kind, t=usdt: ledger_account_get(kind=kind, network_id=t.network_id, token_id=t.id,  # noqa: E731
                                                  livemode=False)
    return {"deposits": get(AccountKind.DEPOSITS), "hot": get(AccountKind.HOT_WALLET),
            "fees": get(AccountKind.FEE_REVENUE), "usdc": get(AccountKind.DEPOSITS, token("usdc"))}


def raw_journal(cursor, *, token_id, network_id) -> int:
    cursor.execute(
        "INSERT INTO settlements_journaltransaction (network_id, token_id, kind, source_type, source_id, memo, created)"
        " VALUES (%s, %s, 'adjustment', 'raw', 'x', '', now()) RETURNING id", [network_id, token_id])
    return cursor.fetchone()[0]


def raw_entry(cursor, journal_id, account, amount) -> None:
    cursor.execute("INSERT INTO settlements_ledgerentry (journal_id, account_id, amount) VALUES (%s, %s, %s)",
                   [journal_id, account.id, amount])


def nothing_written():
    return not JournalTransaction.objects.exists() and not LedgerEntry.objects.exists()


@pytest.mark.parametrize("entries, message", [
    ([("deposits", 100), ("hot", -99)], "does not balance"),
    ([("deposits", 100)], "two or more"),
    ([], "two or more"),
    ([("deposits", 100), ("usdc", -100)], "another asset"),
])
def test_a_raw_insert_of_a_bad_journal_transaction_fails_at_commit(accounts, entries, message):
    usdt = token("usdt")
    with pytest.raises(DatabaseError, match=message):
        with transaction.atomic(), connection.cursor() as cursor:
            journal_id = raw_journal(cursor, token_id=usdt.id, network_id=usdt.network_id)
            for name, amount in entries:
                raw_entry(cursor, journal_id, accounts[name], amount)
            # every statement went through: only the COMMIT refuses it
    assert nothing_written()


def test_a_raw_insert_of_a_balanced_journal_transaction_commits(accounts):
    usdt = token("usdt")
    with transaction.atomic(), connection.cursor() as cursor:
        journal_id = raw_journal(cursor, token_id=usdt.id, network_id=usdt.network_id)
        raw_entry(cursor, journal_id, accounts["deposits"], 100)
        raw_entry(cursor, journal_id, accounts["hot"], -60)
        raw_entry(cursor, journal_id, accounts["fees"], -40)
    assert LedgerEntry.objects.filter(journal_id=journal_id).count() == 3


def test_entries_added_later_to_a_committed_journal_transaction_must_balance_too(accounts):
    journal, _ = journal_transaction_post(kind="adjustment", source_type="test", source_id="1", postings=[
        Posting(accounts["deposits"], 5), Posting(accounts["hot"], -5)])
    with pytest.raises(DatabaseError, match="does not balance"):
        with transaction.atomic(), connection.cursor() as cursor:
            raw_entry(cursor, journal.id, accounts["hot"], 1)
    assert LedgerEntry.objects.filter(journal=journal).count() == 2


@pytest.mark.parametrize("sql", [
    "UPDATE settlements_ledgerentry SET amount = amount * 2",
    "DELETE FROM settlements_ledgerentry",
    "UPDATE settlements_journaltransaction SET memo = 'changed'",
    "DELETE FROM settlements_journaltransaction",
])
def test_ledger_rows_are_append_only(accounts, sql):
    journal, _ = journal_transaction_post(kind="adjustment", source_type="test", source_id="1", memo="m", postings=[
        Posting(accounts["deposits"], 7), Posting(accounts["hot"], -7)])
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    journal.refresh_from_db()
    assert journal.memo == "m"
    assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [-7, 7]


@pytest.mark.parametrize("postings, message", [
    (lambda a: [Posting(a["deposits"], 5), Posting(a["hot"], -4)], "sum to 1"),
    (lambda a: [Posting(a["deposits"], 5), Posting(a["usdc"], -5)], "more than one asset"),
    (lambda a: [Posting(a["deposits"], 5), Posting(a["hot"], 0)], "two or more"),
])
def test_the_posting_service_refuses_what_the_database_would(accounts, postings, message):
    with pytest.raises(LedgerError, match=message):
        journal_transaction_post(kind="adjustment", source_type="test", source_id="1", postings=postings(accounts))
    assert nothing_written()
    assert set(LedgerBalance.objects.values_list("balance", flat=True)) == {0}


def test_posting_a_source_fact_again_is_a_no_op(accounts):
    postings = [Posting(accounts["deposits"], 5), Posting(accounts["hot"], -5)]
    first, created = journal_transaction_post(kind="adjustment", source_type="test", source_id="1", postings=postings)
    again, created_again = journal_transaction_post(kind="adjustment", source_type="test", source_id="1",
                                                    postings=postings)
    assert created and not created_again and again == first
    assert LedgerBalance.objects.get(account=accounts["deposits"]).balance == 5
