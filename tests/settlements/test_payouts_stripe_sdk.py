"""stripe-python, unchanged, drives balance, balance transactions and payouts against a live server."""
import pytest
import stripe

from tests.settlements.conftest import ONE_USDT
from tests.settlements.payout_fixtures import funded, usable_address

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ledger_ready")]


@pytest.fixture
def sdk(live_server, secret_key):
    return stripe.StripeClient(secret_key, base_addresses={"api": live_server.url}, max_network_retries=0)


def test_balance_balance_transactions_and_payouts_through_the_sdk(sdk, merchant):
    funded(merchant, 10 * ONE_USDT)
    usable_address(merchant)

    balance = sdk.v1.balance.retrieve()
    assert balance.available[0].amount == 1000 and balance.available[0].currency == "usd"
    assert balance.available[0]["crypto"][0]["amount_base_units"] == str(10 * ONE_USDT)

    payout = sdk.v1.payouts.create(params={"amount": 250, "currency": "usd", "metadata": {"batch": "7"},
                                           "crypto": {"network": "bsc", "token_currency": "usdt"}})
    assert payout.id.startswith("po_") and payout.status == "pending" and payout.metadata["batch"] == "7"
    assert sdk.v1.payouts.retrieve(payout.id).amount == 250
    assert sdk.v1.payouts.update(payout.id, params={"metadata": {"batch": "8"}}).metadata["batch"] == "8"
    assert [p.id for p in sdk.v1.payouts.list().auto_paging_iter()] == [payout.id]
    assert sdk.v1.balance.retrieve().available[0].amount == 750

    txns = list(sdk.v1.balance_transactions.list(params={"limit": 1}).auto_paging_iter())
    assert [t.type for t in txns] == ["payout", "charge"] and txns[0].source == payout.id
    assert sdk.v1.balance_transactions.retrieve(txns[1].id).net == 1000

    canceled = sdk.v1.payouts.cancel(payout.id)
    assert canceled.status == "canceled" and sdk.v1.balance.retrieve().available[0].amount == 1000

    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.payouts.create(params={"amount": 5000, "currency": "usd",
                                      "crypto": {"network": "bsc", "token_currency": "usdt"}})
    assert exc.value.param == "amount" and exc.value.code == "balance_insufficient"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.payouts.cancel(payout.id)
    assert exc.value.code == "payout_unexpected_state"
