"""`manage.py ledger check` and `ledger rebuild`."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from settlements.models import AccountKind, LedgerAccount, LedgerBalance
from settlements.services import ledger_post_charge_facts

from .conftest import ONE_USDT, fees, paid_charge, reverse

pytestmark = pytest.mark.usefixtures("ledger_ready")


def run(*args) -> str:
    out = StringIO()
    call_command("ledger", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def books(merchant):
    fees(merchant, bps=30, fixed=7)
    paid_charge(merchant, 5 * ONE_USDT)
    reverse(paid_charge(merchant, 2 * ONE_USDT))
    ledger_post_charge_facts()


def test_check_passes_on_books_the_services_wrote(books):
    assert "every journal transaction balances" in run("check")


def test_check_catches_a_corrupted_running_balance_and_rebuild_repairs_it(books, merchant, capsys):
    account = LedgerAccount.objects.get(kind=AccountKind.MERCHANT_AVAILABLE, merchant=merchant)
    right = LedgerBalance.objects.get(account=account).balance
    LedgerBalance.objects.filter(account=account).update(balance=right + 1)

    with pytest.raises(CommandError) as refused:  # manage.py exits with its returncode, 1
        run("check")
    assert refused.value.returncode == 1
    assert f"running balance differs from the entries: {account.id}: merchant_available" in capsys.readouterr().err

    output = run("rebuild")
    assert f"account {account.id}: running balance {right + 1} -> {right}" in output
    assert LedgerBalance.objects.get(account=account).balance == right
    assert "every journal transaction balances" in run("check")


def test_check_names_a_missing_running_balance(books, merchant):
    account = LedgerAccount.objects.get(kind=AccountKind.DEPOSITS)
    LedgerBalance.objects.filter(account=account).delete()
    with pytest.raises(CommandError):
        run("check")
    run("rebuild")
    assert LedgerBalance.objects.get(account=account).balance == 5 * ONE_USDT
    assert "every journal transaction balances" in run("check")
