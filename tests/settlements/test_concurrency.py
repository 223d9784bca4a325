"""The ledger's consumers run side by side on real PostgreSQL connections (threads): each Charge fact is posted
exactly once, and a release racing a reversal leaves the books consistent either way."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from payments.models import ChargeLedgerOutbox
from settlements.models import AccountKind, JournalTransaction, LedgerHold
from settlements.selectors import ledger_problems
from settlements.services import ledger_post_charge_facts, ledger_release_matured

from .conftest import ONE_USDT, balance, fees, hold, owed, paid_charge, reverse

pytestmark = [pytest.mark.usefixtures("ledger_ready"), pytest.mark.django_db(transaction=True)]


def side_by_side(*functions) -> list:
    """Run the functions at once, each in its own thread (and database connection); their results."""
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)
    errors: list = []

    def run(i, function):
        try:
            barrier.wait(timeout=60)
            results[i] = function()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    return results


def test_two_consumers_at_once_post_each_charge_once(merchant):
    fees(merchant, bps=100)
    charges = [paid_charge(merchant, (i + 1) * ONE_USDT) for i in range(12)]
    assert ChargeLedgerOutbox.objects.count() == 12

    posted = side_by_side(ledger_post_charge_facts, ledger_post_charge_facts)
    posted_later = ledger_post_charge_facts()  # a row a consumer gave up on (a deadlock) would be posted now
    assert sum(posted) + posted_later == 12
    assert not ChargeLedgerOutbox.objects.exists()
    for charge in charges:
        assert JournalTransaction.objects.filter(source_id=charge.id, kind="charge_credit").count() == 1
    total = sum(range(1, 13)) * ONE_USDT
    assert balance(AccountKind.DEPOSITS) == total
    assert owed(merchant)["available"] == total - total // 100 and balance(AccountKind.FEE_REVENUE) == -(total // 100)
    assert ledger_post_charge_facts() == 0
    assert ledger_problems() == []


def test_a_release_racing_a_reversal_leaves_the_books_consistent(merchant):
    hold(merchant, 60)
    charges = [paid_charge(merchant, ONE_USDT) for _ in range(6)]
    ledger_post_charge_facts()
    assert LedgerHold.objects.count() == 6
    for charge in charges:
        reverse(charge)
    later = timezone.now() + timedelta(hours=1)

    side_by_side(lambda: ledger_release_matured(now=later), ledger_post_charge_facts)
    ledger_post_charge_facts()
    assert not LedgerHold.objects.exists() and not ChargeLedgerOutbox.objects.exists()
    assert owed(merchant) == {"pending": 0, "available": 0}
    assert balance(AccountKind.DEPOSITS) == 0
    assert JournalTransaction.objects.filter(kind="charge_reversal").count() == 6
    assert ledger_problems() == []
