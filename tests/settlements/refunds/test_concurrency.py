"""50 refund requests on one Charge at once, each in its own thread and database connection, through the API: the
Charge's row lock makes them see each other, so together they never refund more than the Charge."""
import threading

import pytest
from django.db import connection
from django.db.models import Sum

from payments.models import Charge
from settlements.models import AccountKind
from settlements.refunds.models import Refund
from settlements.selectors import ledger_problems
from tests.conftest import FormClient
from tests.settlements.conftest import ONE_USDT, balance, owed

from .conftest import CUSTOMER, credited_charge

pytestmark = [pytest.mark.usefixtures("ledger_ready"), pytest.mark.django_db(transaction=True)]


@pytest.mark.timeout(300)
def test_fifty_parallel_refunds_of_one_charge_never_refund_more_than_it(merchant, secret_key):
    # given a $10 Charge (10 USDT) and, beside it, another Charge's money in the same available balance
    charge = credited_charge(merchant)
    credited_charge(merchant, 5 * ONE_USDT)
    amounts = [30 + (i % 7) * 10 for i in range(50)]  # 30..90 cents: together far more than $10
    barrier = threading.Barrier(len(amounts))
    statuses: list = [None] * len(amounts)
    errors: list = []

    def request(i):
        try:
            client = FormClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
            barrier.wait(timeout=60)
            response = client.post("/v1/refunds", {"charge": charge.id, "amount": amounts[i],
                                                   "crypto[destination_address]": CUSTOMER})
            statuses[i] = (response.status_code, response.json().get("error", {}).get("code"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(amounts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors

    # then every request either made a refund or was refused as too large; never a 500
    assert {s for s in statuses} <= {(200, None), (400, "amount_too_large"), (400, "charge_already_refunded")}
    made = Refund.objects.filter(charge=charge)
    refunded = made.aggregate(s=Sum("amount"))["s"]
    assert refunded <= 1000 and made.count() == sum(1 for s in statuses if s[0] == 200)
    assert Charge.objects.get(pk=charge.pk).amount_refunded == refunded
    # the ledger reserved exactly what the refunds will send, taken from the merchant's available balance
    sent = int(made.aggregate(s=Sum("amount_base_units"))["s"])
    assert sent <= 10 * ONE_USDT
    assert -balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == sent
    assert owed(merchant)["available"] == 15 * ONE_USDT - sent
    assert ledger_problems() == []
