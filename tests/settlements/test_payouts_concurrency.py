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


def test_refunds_and_payouts_racing_for_one_balance_never_overdraw_it(merchant):
    from settlements.refunds.models import Refund
    from settlements.refunds.services import refund_create
    from tests.settlements.refunds.conftest import CUSTOMER

    # given two $10 Charges: 20 USDT available
    charges = [funded(merchant, 10 * ONE_USDT) for _ in range(2)]
    usable_address(merchant)
    usdt = token()

    # when 25 payouts of $0.60 and 25 refunds of $0.40 (never more than a Charge) ask for $25 at the same moment
    def pay() -> tuple:
        try:
            return ("payout", 60, payout_create(merchant=merchant, token=usdt, amount=60, currency="usd").id)
        except DomainError as exc:
            return ("payout", 60, exc.code)

    def refund(charge) -> tuple:
        try:
            return ("refund", 40, refund_create(merchant=merchant, livemode=False, charge=charge, amount=40,
                                                destination_address=CUSTOMER).id)
        except DomainError as exc:
            return ("refund", 40, exc.code)

    asks = [pay] * 25 + [lambda c=charges[i % 2]: refund(c) for i in range(25)]
    outcomes = side_by_side(*asks)

    # then what was reserved never passed what was available, and every refusal asked for more than was left
    made = [o for o in outcomes if o[2].startswith(("po_", "re_"))]
    refused = [o for o in outcomes if not o[2].startswith(("po_", "re_"))]
    assert {o[2] for o in refused} <= {"balance_insufficient"}
    reserved_minor = sum(o[1] for o in made)
    assert reserved_minor <= 2000 and refused  # $25 asked of $20: some were refused
    assert Payout.objects.count() + Refund.objects.count() == len(made)
    left = owed(merchant)["available"]
    assert left == 20 * ONE_USDT - reserved_minor * ONE_USDT // 100 >= 0
    assert -balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == reserved_minor * ONE_USDT // 100
    assert all(o[1] * ONE_USDT // 100 > left for o in refused)
    assert ledger_problems() == []
