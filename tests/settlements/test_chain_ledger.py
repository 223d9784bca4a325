"""End to end on a real chain: an intent paid on anvil ends with the merchant's balance credited in the ledger
(the fixtures and helpers of the payments tests: tests/payments/conftest.py)."""
import pytest

from gateway.celery import app as celery_app
from payments.ledger_outbox import LEDGER_TASK
from settlements.models import JournalTransaction
from settlements.selectors import ledger_balances, ledger_problems
from settlements.tasks import post_charge_facts
from tests.payments.conftest import charges_of, create, settle, simulate
from wallets.models import Transfer

from .conftest import fees

pytestmark = pytest.mark.usefixtures("ledger_ready")


@pytest.fixture
def messages(devnet, monkeypatch) -> list[str]:
    """Task messages sent after commits, captured once `devnet` has silenced them."""
    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, *a, **kw: sent.append(name))
    return sent


def test_a_paid_intent_ends_with_the_merchant_credited(api, merchant, devnet, anvil_chain, messages):
    fees(merchant, bps=100, fixed=0)  # 1%
    settle(devnet, anvil_chain)  # the cursor starts at the head
    intent = create(api, amount=2500)
    assert simulate(api, intent["id"]).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    [charge] = charges_of(api, intent["id"])
    assert charge["status"] == "succeeded"
    assert LEDGER_TASK in messages  # payments told the ledger after its commit

    assert post_charge_facts() == 1  # what the worker runs on that message
    paid = Transfer.objects.get(charge__id=charge["id"]).amount_base_units
    assert paid == 25 * 10**18
    [balance] = ledger_balances(merchant=merchant, livemode=False)
    assert (balance.network, balance.token) == (devnet.code, "usdt")
    assert (balance.pending, balance.available) == (0, paid - paid // 100)
    assert JournalTransaction.objects.filter(source_id=charge["id"]).count() == 2  # credit, release
    assert ledger_balances(merchant=merchant, livemode=True) == []
    assert ledger_problems() == []

    settle(devnet, anvil_chain, mine_blocks=1)  # scanning and applying again posts nothing more
    assert post_charge_facts() == 0
    assert JournalTransaction.objects.filter(source_id=charge["id"]).count() == 2
