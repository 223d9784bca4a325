"""The per-day limits under concurrency (real threads, each its own PostgreSQL connection): payouts and refunds
created at once never take what goes out without an approval past the merchant's or the operator's daily limit."""
import pytest

from settlements.models import MoneyOutDailyVolume, Payout
from settlements.payouts import payout_create
from settlements.refunds import services as refunds
from settlements.refunds.models import Refund
from settlements.selectors import ledger_problems
from tests.settlements.conftest import ONE_USDT, token
from tests.settlements.payout_fixtures import funded, usable_address
from tests.settlements.refunds.conftest import CUSTOMER, credited_charge
from tests.settlements.test_concurrency import side_by_side

pytestmark = [pytest.mark.usefixtures("ledger_ready"), pytest.mark.django_db(transaction=True)]


def test_parallel_payouts_and_refunds_never_pass_the_daily_limit_without_approval(merchant, settings):
    # given a merchant's daily limit of $10, the operator's of $12, and $60 available
    settings.GATEWAY_MONEY_OUT_LIMIT_PER_DAY_MINOR = 1200
    merchant.limit_money_out_per_day_minor = 1000
    merchant.save()
    funded(merchant, 50 * ONE_USDT)
    usable_address(merchant)
    charges = [credited_charge(merchant, 10 * ONE_USDT) for _ in range(2)]
    usdt = token()

    # when 24 payouts of $0.70 and 6 refunds of $0.70 are asked for at the same moment
    def pay():
        return payout_create(merchant=merchant, token=usdt, amount=70, currency="usd").id

    def refund(charge):
        return lambda: refunds.refund_create(merchant=merchant, livemode=False, charge=charge, amount=70,
                                             destination_address=CUSTOMER).id

    side_by_side(*[pay] * 24, *[refund(charges[i % 2]) for i in range(6)])

    # then all were created; the ones released add up to at most $10 (14 x $0.70 = $9.80), the rest wait
    payouts, refunds_ = Payout.objects.all(), Refund.objects.all()
    assert payouts.count() == 24 and refunds_.count() == 6
    released = [*payouts.filter(awaiting_approval=False), *refunds_.filter(awaiting_approval=False)]
    assert len(released) == 14
    assert sum(x.amount for x in released) == 980
    assert payouts.filter(awaiting_approval=True).count() + refunds_.filter(awaiting_approval=True).count() == 16
    assert all(x.pending_reason == "awaiting_approval" for x in [*payouts.filter(awaiting_approval=True),
                                                                 *refunds_.filter(awaiting_approval=True)])
    assert MoneyOutDailyVolume.objects.get(scope=merchant.pk).amount_minor == 980
    assert MoneyOutDailyVolume.objects.get(scope=MoneyOutDailyVolume.OPERATOR).amount_minor == 980
    assert ledger_problems() == []
