"""Sweeps end to end on anvil (Prague): paid intents, batches of type-4 transactions through the transaction
manager, the ledger and reconciliation (docs/money-out.md, "Sweeps")."""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from settlements import sweeps
from settlements.models import AccountKind, JournalTransaction, LedgerAccount, LedgerBalance, Sweep, SweepItem
from settlements.selectors import ledger_problems
from tests.payments.conftest import settle
from wallets import sweeper
from wallets.chain.reconcile import network_reconcile
from wallets.devchain import rpc
from wallets.models import BalanceDiscrepancy, OutgoingTransaction, OutgoingTransfer, Token

from .sweeper_chain import call_data
from .sweeps_helpers import client_for, drive, hot_wallet, paid_intents, policy, sweeper_ready, token_balance

pytestmark = pytest.mark.usefixtures("ledger_ready")


def ledger(kind, network, token, address=""):
    account = LedgerAccount.objects.filter(kind=kind, network=network, token=token, address=address).first()
    return LedgerBalance.objects.get(account=account).balance if account else 0


def test_fifty_paid_intents_are_swept_in_five_type4_transactions(api, merchant, devnet, anvil_chain):
    # given a hot wallet, its Sweeper, a policy of batches of 10, and 50 paid intents
    hot = hot_wallet(devnet, anvil_chain)
    sweeper_ready(devnet, anvil_chain)
    policy(devnet, max_batch_size=10)
    usdt = Token.objects.get(network=devnet, currency="usdt")
    charges = paid_intents(api, devnet, anvil_chain, 50)
    addresses = [c.transfer.deposit_address.address for c in charges]
    total = sum(c.transfer.amount_base_units for c in charges)
    assert ledger(AccountKind.DEPOSITS, devnet, usdt) == total

    # when the sweeper runs, the manager sends, and the chain makes them final
    summary = sweeps.sweeps_run(network=devnet, client=client_for(devnet))
    assert len(summary.sent) == 5
    assert ledger(AccountKind.IN_TRANSIT, devnet, usdt) == total and ledger(AccountKind.DEPOSITS, devnet, usdt) == 0
    assert sweeps.sweeps_run(network=devnet, client=client_for(devnet)).sent == []  # nothing twice while in flight
    drive(devnet, anvil_chain)
    assert sweeps.sweeps_run(network=devnet, client=client_for(devnet)).settled == 5

    # then: five type-4 transactions, each carrying its ten authorizations
    txs = OutgoingTransaction.objects.filter(purpose="sweep")
    assert [(tx.tx_type, tx.status, len(tx.authorization_list)) for tx in txs] == [(4, "final", 10)] * 5
    assert all(s.status == "settled" for s in Sweep.objects.all())
    # every deposit address is at zero, delegated to the Sweeper, and the hot wallet holds the sum
    assert [token_balance(anvil_chain, usdt.contract_address, a) for a in addresses] == [0] * 50
    assert all(sweeper.delegated_to(rpc(anvil_chain.rpc_url, "eth_getCode", [a, "latest"]), devnet.sweeper_address)
               for a in addresses)
    assert token_balance(anvil_chain, usdt.contract_address, hot.address) == total
    # the ledger shows it
    assert ledger(AccountKind.HOT_WALLET, devnet, usdt, hot.address) == total
    assert (ledger(AccountKind.IN_TRANSIT, devnet, usdt), ledger(AccountKind.DEPOSITS, devnet, usdt)) == (0, 0)
    assert ledger_problems() == []
    # gas recorded per swept deposit (the shares add up to each receipt's gas)
    items = SweepItem.objects.all()
    assert all(i.swept_base_units == i.amount_base_units and i.gas_share > 0 and not i.open for i in items)
    assert sum(i.gas_share for i in items) == sum(tx.gas_used for tx in txs)
    # reconciliation finds no difference
    settle(devnet, anvil_chain, mine_blocks=3)
    result = network_reconcile(network=devnet, client=client_for(devnet))
    assert result.status == "reconciled" and result.differences == 0, result
    assert not BalanceDiscrepancy.objects.exists()

    # a later payment is swept by a batch of its own; the swept addresses are not swept again
    [again] = paid_intents(api, devnet, anvil_chain, 1)
    assert len(sweeps.sweeps_run(network=devnet, client=client_for(devnet)).sent) == 1
    drive(devnet, anvil_chain)
    assert sweeps.sweeps_run(network=devnet, client=client_for(devnet)).settled == 1
    last = Sweep.objects.order_by("-id").first()
    assert [i.deposit_address_id for i in last.items.all()] == [again.transfer.deposit_address_id]
    assert ledger(AccountKind.HOT_WALLET, devnet, usdt, hot.address) == total + again.transfer.amount_base_units


def test_dry_run_prints_the_plan_and_changes_nothing(api, merchant, devnet, anvil_chain, capsys):
    hot_wallet(devnet, anvil_chain)
    sweeper_ready(devnet, anvil_chain)
    policy(devnet)
    paid_intents(api, devnet, anvil_chain, 3)
    before = (JournalTransaction.objects.count(), OutgoingTransaction.objects.count(), OutgoingTransfer.objects.count())

    call_command("sweep", "--network", devnet.code, "--dry-run")

    out = capsys.readouterr().out
    assert "devnet usdt: 3 address(es)" in out and "would send" in out
    assert not Sweep.objects.exists()
    assert (JournalTransaction.objects.count(), OutgoingTransaction.objects.count(),
            OutgoingTransfer.objects.count()) == before


def test_a_network_without_7702_is_swept_by_gas_top_ups_then_the_addresses_own_transfers(api, merchant, devnet,
                                                                                        anvil_chain):
    # given a network flagged without EIP-7702 (no Sweeper needed) and three paid intents
    devnet.eip7702 = False
    devnet.save(update_fields=["eip7702"])
    hot = hot_wallet(devnet, anvil_chain)
    policy(devnet)
    usdt = Token.objects.get(network=devnet, currency="usdt")
    charges = paid_intents(api, devnet, anvil_chain, 3)
    total = sum(c.transfer.amount_base_units for c in charges)
    hot_before = token_balance(anvil_chain, usdt.contract_address, hot.address)

    # when the sweeper runs and the manager sends: three top-ups, then three transfers signed by the addresses' keys
    [sweep_id] = sweeps.sweeps_run(network=devnet, client=client_for(devnet)).sent
    assert list(OutgoingTransaction.objects.order_by("id").values_list("purpose", "tx_type")) == \
        [("topup", 2)] * 3 + [("sweep", 2)] * 3
    drive(devnet, anvil_chain)
    assert sweeps.sweeps_run(network=devnet, client=client_for(devnet)).settled == 1

    # then every address is at zero, the hot wallet holds the sum, the ledger shows it and the chain agrees
    sweep = Sweep.objects.get(pk=sweep_id)
    assert (sweep.method, sweep.status, sweep.swept_base_units) == ("topup", "settled", total)
    addresses = [c.transfer.deposit_address for c in charges]
    assert [token_balance(anvil_chain, usdt.contract_address, a.address) for a in addresses] == [0] * 3
    assert token_balance(anvil_chain, usdt.contract_address, hot.address) - hot_before == total
    assert ledger(AccountKind.HOT_WALLET, devnet, usdt, hot.address) == total
    assert ledger(AccountKind.IN_TRANSIT, devnet, usdt) == 0 and ledger_problems() == []
    assert ledger(AccountKind.GAS_SPENT, devnet, None) > 0  # the top-ups, expensed
    assert all(i.gas_share > 0 for i in sweep.items.all())
    settle(devnet, anvil_chain, mine_blocks=3)
    result = network_reconcile(network=devnet, client=client_for(devnet), addresses=addresses)
    assert result.status == "reconciled" and result.differences == 0 and result.balances == 9, result


def test_the_policy_decides_when_a_batch_is_worth_sending(api, merchant, devnet, anvil_chain):
    hot_wallet(devnet, anvil_chain)
    sweeper_ready(devnet, anvil_chain)
    usdt = Token.objects.get(network=devnet, currency="usdt")
    paid_intents(api, devnet, anvil_chain, 3)  # 10 USDT each
    client = client_for(devnet)

    def plan(**fields):
        policy(devnet, **fields)
        return sweeps.sweep_plan(network=devnet, token=usdt, client=client)

    assert "no active sweep policy" in sweeps.sweep_plan(network=devnet, token=usdt, client=client).waiting
    assert plan(min_amount_base_units=11 * 10**18).waiting == "nothing to sweep"  # not worth the gas yet
    assert "batching window" in plan(batch_window_seconds=3600, max_batch_size=10).waiting
    assert plan(batch_window_seconds=3600, max_batch_size=3).waiting == ""  # a full batch does not wait
    assert "above the policy's ceiling" in plan(max_gas_price_wei=1).waiting
    ready = plan(max_batch_size=2)
    assert (ready.waiting, len(ready.items), all(i.authorize for i in ready.items)) == ("", 2, True)
    assert sweeps.sweep_batch_create(plan=ready) is not None
    # the same plan again: its addresses are in an open sweep, the database refuses it whole
    before = (OutgoingTransaction.objects.count(), JournalTransaction.objects.count())
    assert sweeps.sweep_batch_create(plan=ready) is None
    assert (OutgoingTransaction.objects.count(), JournalTransaction.objects.count()) == before
    assert Sweep.objects.count() == 1
    assert len(plan(max_batch_size=10).items) == 1  # what is left


def drain(chain, token: str, owner: str, amount: int) -> None:
    """Move `amount` of `token` out of `owner` behind the gateway's back (anvil impersonation): its next sweep is
    skipped for that address, as a token that blacklisted it or reverts would skip it."""
    rpc(chain.rpc_url, "anvil_impersonateAccount", [owner])
    rpc(chain.rpc_url, "anvil_setBalance", [owner, hex(10**18)])
    data = call_data("transfer(address,uint256)", ["address", "uint256"], [chain.accounts[1], amount])
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [{"from": owner, "to": token, "data": "0x" + data.hex()}])
    rpc(chain.rpc_url, "anvil_mine", ["0x1"])
    assert int(rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash])["status"], 16) == 1
    rpc(chain.rpc_url, "anvil_stopImpersonatingAccount", [owner])


def test_an_address_its_sweep_skipped_is_not_swept_again_until_its_cool_down_ends(api, merchant, devnet, anvil_chain,
                                                                                 caplog):
    # given two paid intents, one of whose addresses no longer holds its tokens (the token refuses to move them)
    hot_wallet(devnet, anvil_chain)
    sweeper_ready(devnet, anvil_chain)
    policy(devnet)
    usdt = Token.objects.get(network=devnet, currency="usdt")
    stuck, fine = paid_intents(api, devnet, anvil_chain, 2)
    stuck_address = stuck.transfer.deposit_address
    drain(anvil_chain, usdt.contract_address, stuck_address.address, stuck.transfer.amount_base_units)

    # when a sweep runs and settles: the stuck address is skipped (swept 0), the other one swept, a warning logged
    client = client_for(devnet)
    assert len(sweeps.sweeps_run(network=devnet, client=client).sent) == 1
    drive(devnet, anvil_chain)
    assert sweeps.sweeps_run(network=devnet, client=client).settled == 1
    swept = {i.deposit_address_id: i.swept_base_units for i in SweepItem.objects.all()}
    assert swept == {stuck_address.id: 0, fine.transfer.deposit_address_id: fine.transfer.amount_base_units}
    assert any("skipped" in r.getMessage() and stuck_address.address in r.getMessage() for r in caplog.records)
    transactions = OutgoingTransaction.objects.count()

    # then the next runs do not offer it again (no gas burnt on it), and the plan says why
    for _ in range(2):
        assert sweeps.sweeps_run(network=devnet, client=client).sent == []
    assert OutgoingTransaction.objects.count() == transactions and Sweep.objects.count() == 1
    plan = sweeps.sweep_plan(network=devnet, token=usdt, client=client)
    assert plan.items == [] and "skipped by their last sweep" in plan.waiting
    # and once its cool-down has passed it is offered again
    later = timezone.now() + timedelta(seconds=sweeps.SKIPPED_RETRY_SECONDS + 1)
    plan = sweeps.sweep_plan(network=devnet, token=usdt, client=client, now=later)
    assert [i.deposit_address.id for i in plan.items] == [stuck_address.id]
