"""50 payouts created at once (real threads, each its own PostgreSQL connection) never overdraw the balance."""
import pytest

from gateway.errors import DomainError
from settlements.models import AccountKind, JournalTransaction, Payout
from settlements.payouts import payout_create
from settlements.selectors import ledger_problems
from tests.settlements.conftest import ONE_USDT, balance, owed, token
from tests.settlements.test_concurrency import side_by_side
from tests.settlements.payout_fixtures import funded, usable_address

pytestmark = [pytest.mark.usefixtures("ledger_ready"), pytest.mark.django_db(transaction=True)]


def test_fifty_parallel_payouts_never_overdraw_the_available_balance(merchant):
    # given 10 USDT available (1000 cents)
    funded(merchant, 10 * ONE_USDT)
    usable_address(merchant)
    usdt = token()

    # when 50 threads each ask for 0.30 USD at the same moment
    def ask() -> str:
        try:
            payout_create(merchant=merchant, token=usdt, amount=30, currency="usd")
            return "created"
        except DomainError as exc:
            return exc.code

    outcomes = side_by_side(*[ask] * 50)

    # then exactly 33 fit (9.90 USD), the other 17 were refused, and the books add up
    assert len(outcomes) == 50
    assert outcomes.count("created") == 33 and outcomes.count("balance_insufficient") == 17
    assert Payout.objects.count() == 33
    assert JournalTransaction.objects.filter(kind="payout_reserve").count() == 33
    assert owed(merchant)["available"] == ONE_USDT // 10
    assert -balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == 33 * 3 * ONE_USDT // 10
    assert ledger_problems() == []
