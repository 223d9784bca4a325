"""A test key never moves live money (issue 10, isolation): the merchant's live Charge and live available balance are
out of reach of its test key, over the API (404, or a refusal of the test-mode balance) and in the refund service's
last guard; the live key sees the same money (so the refusals are not for want of it)."""
import pytest
from django.utils import timezone

from gateway.errors import DomainError
from payments import funding
from payments.models import Charge
from payments.services import PaymentIntentInput, payment_intent_create
from settlements.models import Payout, PayoutAddress
from settlements.payouts import payout_address_add
from settlements.refunds.services import refund_create
from settlements.selectors import ledger_balances
from settlements.services import ledger_post_charge_facts
from tests.conftest import FormClient
from tests.settlements.payout_fixtures import RECIPIENT, create_payout, snapshot, usable_address
from tests.settlements.refunds.conftest import CUSTOMER
from wallets.models import AddressActivity, Network, Token, Transfer

pytestmark = pytest.mark.usefixtures("ledger_ready")


def live_charge(merchant) -> Charge:
    """A $10 live-mode intent paid with 10 live USDT on bsc, final, its Charge posted (available: no hold)."""
    network = Network.objects.get(api_name="bsc", livemode=True, is_active=True)
    usdt = Token.objects.get(network=network, currency="usdt")
    intent = payment_intent_create(merchant=merchant, livemode=True,
                                   data=PaymentIntentInput(amount=1000, currency="usd", networks=["bsc"]))
    transfer = Transfer.objects.create(
        network=network, token=usdt, tx_hash="0x" + "1e" * 32, log_index=0, block_number=100,
        block_hash="0x" + "2" * 64, from_address="0x" + "b" * 40, to_address=intent.deposit_address.address,
        deposit_address=intent.deposit_address, amount_base_units=10 * 10**usdt.decimals, finalized_at=timezone.now())
    AddressActivity.objects.create(deposit_address=intent.deposit_address)
    funding.address_activity_process()
    ledger_post_charge_facts()
    return Charge.objects.get(transfer=transfer)


def test_a_test_key_never_moves_live_money(api, merchant, make_key):
    # given the merchant's live Charge, credited, and a usable live payout address
    charge = live_charge(merchant)
    payout_address_add(merchant=merchant, token=charge.transfer.token, address=RECIPIENT)
    PayoutAddress.objects.update(usable_after=timezone.now())
    live = FormClient()
    live.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(merchant, livemode=True)}")
    assert live.get("/v1/balance").json()["available"][0]["amount"] == 1000  # the live money is there
    [live_balance] = ledger_balances(merchant=merchant, livemode=True)
    before = snapshot()

    # the test key does not see the live Charge nor its intent, and cannot refund either
    assert api.get(f"/v1/charges/{charge.id}").status_code == 404
    for params in ({"charge": charge.id}, {"payment_intent": charge.payment_intent_id}):
        refused = api.post("/v1/refunds", {**params, "crypto[destination_address]": CUSTOMER})
        assert refused.status_code == 404 and refused.json()["error"]["type"] == "invalid_request_error"
    # nor does the refund service, called with test mode (its last guard)
    with pytest.raises(DomainError) as exc:
        refund_create(merchant=merchant, livemode=False, charge=charge, amount=100, destination_address=CUSTOMER)
    assert exc.value.code == "resource_missing"

    # its balance and balance transactions show nothing of the live money, and its payouts cannot reach it
    assert api.get("/v1/balance").json()["available"] == []
    assert api.get("/v1/balance_transactions").json()["data"] == []
    missing = create_payout(api, 100)  # the test-mode token has no payout address
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "payout_address_missing"
    usable_address(merchant)
    short = create_payout(api, 100)  # with one: the test-mode balance is empty
    assert short.status_code == 400 and short.json()["error"]["code"] == "balance_insufficient"

    # nothing was written and the live balance is whole
    assert snapshot() == before and not Payout.objects.exists()
    assert ledger_balances(merchant=merchant, livemode=True) == [live_balance]
    assert Charge.objects.get(pk=charge.pk).amount_refunded == 0
