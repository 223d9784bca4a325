"""Reconciliation of the hot wallet and the cold addresses with the ledger: a planted difference (tokens sent to
the hot wallet from outside without a top-up record) is found and recorded once; recording the top-up clears it."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from settlements.hotcold.reconcile import wallets_reconcile
from settlements.hotcold.services import cold_transfer_start
from settlements.models import Sweep
from wallets.models import BalanceDiscrepancy

from .conftest import ONE, mine, mint, record_topup


def test_tokens_sent_to_the_hot_wallet_without_a_top_up_record_are_a_difference(chain, network, client, hot, usdt,
                                                                               setting):
    # Given a hot wallet whose native coin is recorded, and 7 USDT minted to it that nobody recorded
    assert wallets_reconcile(network=network, client=client).differences == 0
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=7 * ONE)
    mine(chain, 3)  # final

    # When reconciliation runs (twice, and by the command)
    first = wallets_reconcile(network=network, client=client)
    second = wallets_reconcile(network=network, client=client)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("ledger", "check", "--chain", stdout=out)

    # Then the difference is recorded once, for the hot wallet, in USDT
    assert (first.differences, first.recorded, second.differences, second.recorded) == (1, 1, 1, 0)
    [found] = BalanceDiscrepancy.objects.all()
    assert (found.wallet, found.address, found.deposit_address_id, found.token_id) == ("hot", hot.address, None,
                                                                                      usdt.id)
    assert (found.onchain_base_units, found.recorded_base_units, found.difference_base_units) == (7 * ONE, 0, 7 * ONE)
    assert "1 differences" in out.getvalue()

    # When the top-up is recorded (twice: the same transaction counts once), then no difference is left
    record_topup(network, client, usdt, 7 * ONE, tx_hash)
    record_topup(network, client, usdt, 7 * ONE, tx_hash)
    assert wallets_reconcile(network=network, client=client).differences == 0
    assert BalanceDiscrepancy.objects.count() == 1


def test_tokens_at_the_cold_address_from_elsewhere_are_a_difference(chain, network, client, hot, usdt, setting):
    mint(chain, token=usdt.contract_address, to=setting.cold_address, amount=3)
    mine(chain, 3)
    summary = wallets_reconcile(network=network, client=client)
    [found] = BalanceDiscrepancy.objects.all()
    assert summary.differences == 1 and (found.wallet, found.address, found.difference_base_units) == (
        "cold", setting.cold_address, 3)


def test_a_wallet_with_a_send_in_flight_is_skipped_not_reported(chain, network, client, hot, usdt, setting):
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=150 * ONE)
    record_topup(network, client, usdt, 150 * ONE, tx_hash)
    assert cold_transfer_start(setting=setting) is not None  # posted at send, not on chain yet
    summary = wallets_reconcile(network=network, client=client)
    assert summary.differences == 0 and len(summary.skipped) == 2  # the hot wallet and the cold address
    assert not BalanceDiscrepancy.objects.exists()


def test_the_hot_wallet_is_skipped_while_a_sweep_is_not_settled(chain, network, client, hot, usdt, setting):
    # given a sweep sent to the hot wallet, its final posting not done yet (its tokens already arrived)
    Sweep.objects.create(network=network, token=usdt, method=Sweep.Method.EIP7702, hot_address=hot.address,
                         amount_base_units=5 * ONE)
    mint(chain, token=usdt.contract_address, to=hot.address, amount=5 * ONE)
    mine(chain, 3)

    # when reconciliation runs, then the hot wallet is skipped, no false difference
    summary = wallets_reconcile(network=network, client=client)
    assert summary.differences == 0 and any("sweep is not settled" in s for s in summary.skipped), summary
    assert not BalanceDiscrepancy.objects.exists()
