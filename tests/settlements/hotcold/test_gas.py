"""The gas of every ended transaction of the hot wallet is posted once (Dr gas_spent, Cr hot_wallet native), however
often and however concurrently the task runs; afterwards the hot wallet's native balance equals the chain's."""
import pytest

from settlements.hotcold.reconcile import _hot_busy, wallets_reconcile
from settlements.hotcold.services import GAS_SOURCE, gas_unposted_transactions, outgoing_gas_post
from settlements.models import AccountKind, JournalTransaction
from settlements.selectors import ledger_problems
from tests.settlements.test_concurrency import side_by_side
from tests.wallets.outgoing.conftest import ETH
from wallets.outgoing import services as outgoing
from wallets.outgoing.models import OutgoingTransaction

from .conftest import drive, ledger, native_balance

pytestmark = pytest.mark.django_db(transaction=True)


def test_gas_is_posted_once_even_when_the_task_runs_twice_at_once(chain, network, client, hot):
    # Given five sends of the hot wallet (any purpose), one still open, ended on chain
    for i in range(5):
        outgoing.outgoing_transaction_create(network=network, to_address="0x" + "5e" * 20, gas_limit=21_000,
                                             purpose="test", value_base_units=0, source_reference=f"gas-{i}")
    drive(chain, network, client)
    open_one = outgoing.outgoing_transaction_create(network=network, to_address="0x" + "5e" * 20, gas_limit=21_000,
                                                    purpose="test", source_reference="still-open")

    # When the gas task runs four times at once, then once more
    posted = side_by_side(*[outgoing_gas_post] * 4)
    again = outgoing_gas_post()

    # Then each ended transaction's gas is posted exactly once; the open one not yet
    assert sum(posted) == 5 and again == 0
    ended = OutgoingTransaction.objects.filter(status="final")
    assert JournalTransaction.objects.filter(source_type=GAS_SOURCE, kind="gas_spent").count() == 5
    assert not JournalTransaction.objects.filter(source_type=GAS_SOURCE, source_id=str(open_one.id)).exists()
    gas = sum(tx.gas_used * tx.effective_gas_price for tx in ended)
    assert ledger(AccountKind.GAS_SPENT, network, None) == gas
    assert ledger(AccountKind.HOT_WALLET, network, None, hot.address) == 10 * ETH - gas
    assert ledger_problems() == []

    # ... and once the open one has ended and its gas is posted, the hot wallet equals the chain
    drive(chain, network, client)
    assert outgoing_gas_post() == 1
    assert native_balance(chain, hot.address) == ledger(AccountKind.HOT_WALLET, network, None, hot.address)
    summary = wallets_reconcile(network=network, client=client)
    assert (summary.status, summary.differences) == ("reconciled", 0)


def test_a_transaction_ended_without_gas_recorded_does_not_wait_for_gas_forever(chain, network, client, hot):
    # Given a final transaction of the hot wallet whose gas was not recorded (zero), next to one whose gas was
    for i in range(2):
        outgoing.outgoing_transaction_create(network=network, to_address="0x" + "5e" * 20, gas_limit=21_000,
                                             purpose="test", value_base_units=0, source_reference=f"gas-{i}")
    drive(chain, network, client)
    without, with_gas = OutgoingTransaction.objects.order_by("id")
    OutgoingTransaction.objects.filter(pk=without.pk).update(gas_used=None)

    # When the gas is posted
    posted = outgoing_gas_post()

    # Then only the one with gas is posted, and nothing is left waiting for gas (the reconciliation is not held back)
    assert posted == 1
    assert list(JournalTransaction.objects.filter(source_type=GAS_SOURCE).values_list("source_id", flat=True)) == [
        str(with_gas.id)]
    assert not gas_unposted_transactions().exists() and outgoing_gas_post() == 0
    assert "gas" not in _hot_busy(network, hot.address, with_gas.block_number)
