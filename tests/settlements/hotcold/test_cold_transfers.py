"""The surplus of the hot wallet above its ceiling goes to the cold address through the transaction manager, posted
per the money-out conventions; a reverted one is reversed; the ledger equals the chain afterwards."""
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from settlements.hotcold.models import ColdTransfer, ColdTransferEvent
from settlements.hotcold.reconcile import wallets_reconcile
from settlements.hotcold.services import cold_transfer_start, hot_cold_run
from settlements.models import AccountKind, JournalTransaction
from settlements.selectors import ledger_problems
from tests.settlements.test_concurrency import side_by_side
from wallets.models import BalanceDiscrepancy
from wallets.outgoing import services as outgoing
from tests.wallets.outgoing.conftest import ETH
from wallets.outgoing.models import OutgoingTransaction, SendingAddress

from .conftest import ONE, drive, ledger, mint, native_balance, record_topup, token_balance

HOT, COLD, IN_TRANSIT, GAS = (AccountKind.HOT_WALLET, AccountKind.COLD_WALLET, AccountKind.IN_TRANSIT,
                              AccountKind.GAS_SPENT)


def events(cold: ColdTransfer) -> list[str]:
    return list(ColdTransferEvent.objects.filter(cold_transfer=cold).order_by("id").values_list("to_status",
                                                                                               flat=True))


def test_the_surplus_goes_to_cold_once_and_the_ledger_equals_the_chain(chain, network, client, hot, usdt, setting):
    # Given 250 USDT in the hot wallet (a recorded top-up) and a ceiling of 100
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=250 * ONE)
    record_topup(network, client, usdt, 250 * ONE, tx_hash)

    # When the beat task runs (twice)
    first, second = hot_cold_run(), hot_cold_run()

    # Then one cold transfer of the surplus is in flight, posted at send; never a second one meanwhile
    [cold] = ColdTransfer.objects.all()
    assert first.cold_transfers == [cold.id] and second.cold_transfers == []
    assert (cold.amount_base_units, cold.status, cold.to_address) == (150 * ONE, "sent", setting.cold_address)
    tx = cold.outgoing_transaction
    assert (tx.purpose, tx.source_reference, tx.to_address, tx.from_address) == (
        "cold", str(cold.id), usdt.contract_address, hot.address)
    assert bytes(tx.data)[:4].hex() == "a9059cbb"
    assert ledger(HOT, network, usdt, hot.address) == 100 * ONE
    assert ledger(IN_TRANSIT, network, usdt) == 150 * ONE

    # When the transaction manager takes it to finality and the task runs again
    drive(chain, network, client)
    run = hot_cold_run()

    # Then it is completed: in the cold wallet, nothing in transit, its gas posted once
    cold.refresh_from_db()
    assert cold.status == "completed" and events(cold) == ["sent", "completed"]
    assert run.settled == 1 and run.gas_posted == 1 and run.cold_transfers == []
    assert ledger(COLD, network, usdt, setting.cold_address) == 150 * ONE
    assert ledger(IN_TRANSIT, network, usdt) == 0
    tx.refresh_from_db()
    assert ledger(GAS, network, None) == tx.gas_used * tx.effective_gas_price
    # ... and the ledger equals the chain, to the base unit
    assert token_balance(chain, usdt, setting.cold_address) == 150 * ONE
    assert token_balance(chain, usdt, hot.address) == ledger(HOT, network, usdt, hot.address) == 100 * ONE
    assert native_balance(chain, hot.address) == ledger(HOT, network, None, hot.address)
    summary = wallets_reconcile(network=network, client=client)
    assert (summary.status, summary.differences, summary.skipped) == ("reconciled", 0, [])
    assert summary.balances == 4  # hot: native, usdt, usdc; cold: usdt
    assert ledger_problems() == []
    out = StringIO()
    call_command("ledger", "check", "--chain", "--network", network.code, stdout=out)
    assert "0 differences" in out.getvalue()
    assert hot_cold_run().as_json() == {"settled": 0, "gas_posted": 0, "cold_transfers": [], "alerts": {}}


def test_a_reverted_cold_transfer_is_reversed(chain, network, client, hot, usdt, setting):
    # Given a ledger that believes the hot wallet holds 300 USDT while the chain holds 50 (a wrong top-up record)
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=50 * ONE)
    record_topup(network, client, usdt, 300 * ONE, tx_hash, verify=False)
    cold = cold_transfer_start(setting=setting)
    assert cold.amount_base_units == 200 * ONE

    # When its transaction reverts on chain (the token refuses: balance too low) and the task runs
    drive(chain, network, client)
    tx = OutgoingTransaction.objects.get(pk=cold.outgoing_transaction_id)
    assert (tx.status, tx.receipt_status) == ("failed", 0)
    run = hot_cold_run()

    # Then the send is reversed exactly, the gas is still spent, and nothing reached cold
    cold.refresh_from_db()
    assert cold.status == "failed" and events(cold) == ["sent", "failed"]
    assert run.settled == 1 and run.gas_posted == 1
    assert ledger(HOT, network, usdt, hot.address) == 300 * ONE
    assert ledger(IN_TRANSIT, network, usdt) == 0
    assert ledger(COLD, network, usdt, setting.cold_address) == 0
    assert JournalTransaction.objects.filter(source_type="cold_transfer", source_id=str(cold.id)).count() == 2
    assert token_balance(chain, usdt, setting.cold_address) == 0
    assert native_balance(chain, hot.address) == ledger(HOT, network, None, hot.address)
    assert ledger_problems() == []
    assert run.cold_transfers == [] and ColdTransfer.objects.count() == 1  # not retried at once
    # ... and reconciliation says what is wrong
    summary = wallets_reconcile(network=network, client=client)
    [found] = BalanceDiscrepancy.objects.filter(wallet="hot")
    assert summary.differences == 1
    assert (found.token_id, found.onchain_base_units, found.recorded_base_units) == (usdt.id, 50 * ONE, 300 * ONE)


def test_nothing_below_the_ceiling_and_nothing_without_a_hot_wallet(chain, network, client, usdt, setting):
    assert cold_transfer_start(setting=setting) is None  # no hot wallet registered
    assert not ColdTransfer.objects.exists() and not OutgoingTransaction.objects.exists()


def test_no_cold_transfer_when_the_chain_holds_less_than_the_ledger_says(chain, network, client, hot, usdt, setting):
    # Given a ledger that says 300 USDT while the chain holds 50
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=50 * ONE)
    record_topup(network, client, usdt, 300 * ONE, tx_hash, verify=False)
    # When the beat task runs, then it sends nothing that would revert
    assert hot_cold_run().cold_transfers == []
    assert not ColdTransfer.objects.exists() and not OutgoingTransaction.objects.exists()
    assert ledger(HOT, network, usdt, hot.address) == 300 * ONE


def test_a_cancelled_cold_transfer_is_reversed(chain, network, client, hot, usdt, setting):
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=120 * ONE)
    record_topup(network, client, usdt, 120 * ONE, tx_hash)
    cold = cold_transfer_start(setting=setting)
    outgoing.outgoing_transaction_cancel(tx=cold.outgoing_transaction)  # an operator cancels it before it is signed

    drive(chain, network, client)
    assert OutgoingTransaction.objects.get(pk=cold.outgoing_transaction_id).status == "cancelled"
    run = hot_cold_run()

    cold.refresh_from_db()
    assert cold.status == "cancelled" and events(cold) == ["sent", "cancelled"]
    assert run.settled == 1 and run.gas_posted == 1 and run.cold_transfers == []  # not retried at once
    assert ledger(HOT, network, usdt, hot.address) == 120 * ONE and ledger(IN_TRANSIT, network, usdt) == 0
    assert token_balance(chain, usdt, hot.address) == 120 * ONE
    assert native_balance(chain, hot.address) == ledger(HOT, network, None, hot.address)
    assert wallets_reconcile(network=network, client=client).differences == 0


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_start_one_cold_transfer(chain, network, client, hot, usdt, setting):
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=400 * ONE)
    record_topup(network, client, usdt, 400 * ONE, tx_hash)

    started = side_by_side(*[lambda: cold_transfer_start(setting=setting, onchain_balance=400 * ONE)] * 3)

    assert len([cold for cold in started if cold is not None]) == 1
    [cold] = ColdTransfer.objects.all()
    assert cold.amount_base_units == 300 * ONE and OutgoingTransaction.objects.count() == 1
    assert ledger(HOT, network, usdt, hot.address) == 100 * ONE and ledger(IN_TRANSIT, network, usdt) == 300 * ONE
    assert ledger_problems() == []


@pytest.mark.django_db(transaction=True)
def test_a_run_goes_on_when_a_cold_transfer_cannot_take_the_hot_wallets_lock(chain, network, client, hot, usdt,
                                                                             setting):
    # Given a surplus of 150 USDT, a native floor above the hot wallet's 10 ETH, and another transaction (a payout)
    # holding the hot SendingAddress's lock
    setting.native_floor_base_units = 50 * ETH
    setting.save()
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=250 * ONE)
    record_topup(network, client, usdt, 250 * ONE, tx_hash)
    held, release = threading.Event(), threading.Event()

    def payout():
        try:
            with transaction.atomic():
                SendingAddress.objects.select_for_update().get(pk=hot.pk)
                held.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=payout)
    holder.start()
    assert held.wait(30)

    # When the beat task runs and its cold transfer gives up on that lock (an OperationalError, like a deadlock)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        run = hot_cold_run()
    finally:
        release.set()
        holder.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    # Then nothing was half-written, the floors were still checked, and the next run sends the surplus
    assert run.cold_transfers == [] and run.alerts == {network.code: ["raised native"]}
    assert not ColdTransfer.objects.exists() and not OutgoingTransaction.objects.exists()
    assert ledger(HOT, network, usdt, hot.address) == 250 * ONE and ledger(IN_TRANSIT, network, usdt) == 0
    started = hot_cold_run().cold_transfers
    [cold] = ColdTransfer.objects.all()
    assert started == [cold.id] and cold.amount_base_units == 150 * ONE and ledger(IN_TRANSIT, network, usdt) == 150 * ONE
