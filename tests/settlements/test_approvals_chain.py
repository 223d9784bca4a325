"""Approval releases a held payout to sending, on anvil through the transaction manager, as an unheld one goes; a
payout pending when its merchant is frozen waits and goes after the unfreeze."""
import pytest

from merchants.services import merchant_freeze, merchant_unfreeze
from payments.models import Event
from settlements import approvals
from settlements.models import Payout
from settlements.payouts import payouts_advance
from settlements.selectors import ledger_problems
from tests.settlements.conftest import ONE_USDT, owed
from tests.settlements.payout_fixtures import RECIPIENT, create_payout, funded, usable_address
from tests.settlements.test_payouts_chain import hot, run_chain  # noqa: F401 (fixture)
from tests.staff import staff_user
from wallets.devchain import erc20_balance_of
from wallets.outgoing.models import OutgoingTransaction

pytestmark = [pytest.mark.usefixtures("ledger_ready"), pytest.mark.timeout(240)]


def test_an_approved_payout_is_sent_and_paid_and_a_frozen_one_waits(api, merchant, devnet, devnet_chain, hot):  # noqa: F811
    sending, client, fund = hot
    fund(held=20 * ONE_USDT, booked=20 * ONE_USDT)
    merchant.limit_money_out_per_transaction_minor = 300
    merchant.save()
    funded(merchant, 10 * ONE_USDT)
    usable_address(merchant)
    usdt_contract = devnet_chain.tokens["usdt"]
    before = erc20_balance_of(devnet_chain.rpc_url, usdt_contract, RECIPIENT)

    # given a $5 payout held for approval: the beat task sends nothing
    payout_id = create_payout(api, 500).json()["id"]
    payouts_advance()
    assert not OutgoingTransaction.objects.filter(source_reference=payout_id).exists()

    # when a finance member approves it, it is sent, becomes final and is paid
    approvals.payout_approve(payout=Payout.objects.get(pk=payout_id), actor=staff_user("finance", "checker"))
    payouts_advance()
    assert api.get(f"/v1/payouts/{payout_id}").json()["status"] == "in_transit"
    run_chain(devnet, devnet_chain, client)
    payouts_advance()
    paid = api.get(f"/v1/payouts/{payout_id}").json()
    assert (paid["status"], paid["crypto"]["awaiting_approval"]) == ("paid", False)
    assert erc20_balance_of(devnet_chain.rpc_url, usdt_contract, RECIPIENT) - before == 5 * ONE_USDT
    assert list(Event.objects.filter(object_id=payout_id).order_by("sequence").values_list("type", flat=True)) == [
        "payout.created", "payout.updated", "payout.paid"]

    # given a $2 payout (under the limit) pending when the merchant is frozen: it waits with the reason
    second = create_payout(api, 200).json()["id"]
    merchant_freeze(merchant=merchant, reason="review")
    payouts_advance()
    assert Payout.objects.get(pk=second).pending_reason == "account_frozen"
    assert not OutgoingTransaction.objects.filter(source_reference=second).exists()

    # after the unfreeze it is sent and paid
    merchant_unfreeze(merchant=merchant)
    payouts_advance()
    run_chain(devnet, devnet_chain, client)
    payouts_advance()
    assert api.get(f"/v1/payouts/{second}").json()["status"] == "paid"
    assert erc20_balance_of(devnet_chain.rpc_url, usdt_contract, RECIPIENT) - before == 7 * ONE_USDT
    assert owed(merchant)["available"] == 3 * ONE_USDT
    assert ledger_problems() == []
