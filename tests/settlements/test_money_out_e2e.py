"""Money out end to end (issue 10, "What must show that it works", first proof): Stripe's official Python SDK,
unchanged, against a live server and the devnet. A customer pays an intent with a real token transfer; the balance
shows it pending, then available after the holding period; the merchant refunds part of it without an address; the
customer opens the e-mailed claim link and confirms an address as a browser does (CSRF cookie and token); the hot
wallet sends the refund through the signer and the transaction manager; the merchant pays out the rest to its
allowlisted payout address; the balance is back to zero. The chain (read with web3) shows each transfer, the balance
transactions tell the same story and `manage.py ledger check --chain` is clean.

The Celery tasks run in this process, as the beat and the workers would call them (the task functions themselves);
the hot wallet's tokens and gas are recorded top-ups (`manage.py ledger topup`), as an operator funds it."""
import re
from datetime import timedelta
from io import StringIO

import pytest
import requests
import stripe
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from eth_utils import to_checksum_address
from web3 import Web3

from payments.models import Event
from settlements import tasks as settlement_tasks
from settlements.hotcold.reconcile import wallets_reconcile
from settlements.hotcold.services import hot_wallet_topup_record, topup_transaction_verify
from settlements.models import Payout
from settlements.refunds.models import Refund
from settlements.selectors import ledger_problems
from settlements.services import ledger_release_matured
from tests.payments.conftest import mined, settle
from tests.settlements.conftest import ONE_USDT, fees, hold
from tests.settlements.payout_fixtures import usable_address
from wallets.chain.rpc import RpcClient
from wallets.devchain import rpc
from wallets.outgoing import services as outgoing
from wallets.outgoing import tasks as outgoing_tasks
from wallets.outgoing.models import OutgoingTransaction
from wallets.signer import signer_reset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480), pytest.mark.usefixtures("ledger_ready")]
ETH = 10**18
ERC20 = [{"name": "balanceOf", "type": "function", "stateMutability": "view",
          "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}]
CUSTOMER = to_checksum_address("0x" + "c5" * 19 + "01")  # the address the customer claims the refund to
PAYOUT_TO = "0x" + "5e" * 19 + "02"  # the merchant's allowlisted payout address


@pytest.fixture
def chain_env(devnet, devnet_chain, monkeypatch):
    monkeypatch.setenv(devnet.rpc_env, devnet_chain.rpc_url)  # the tasks build their RPC client from it
    signer_reset()
    yield devnet
    signer_reset()


@pytest.fixture
def sdk(live_server, secret_key):
    return stripe.StripeClient(secret_key, base_addresses={"api": live_server.url}, max_network_retries=0)


def topped_up_hot_wallet(devnet, chain, *, gas: int, tokens: int):
    """The hot wallet, given native coin and USDT from anvil's account 0, both recorded as top-ups (checked on the
    chain, as `manage.py ledger topup` records them)."""
    client = RpcClient([chain.rpc_url], name="money-out-e2e", retry_budget=1.0)
    hot = outgoing.sending_address_register(network=devnet, client=client)
    usdt = devnet.tokens.get(currency="usdt")
    mint = "0x40c10f19" + hot.address[2:].rjust(64, "0") + hex(tokens)[2:].rjust(64, "0")
    for token, tx in ((None, {"to": hot.address, "value": hex(gas)}), (usdt, {"to": chain.tokens["usdt"],
                                                                           "data": mint})):
        tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [{"from": chain.accounts[0], **tx}])
        mined(chain.rpc_url, tx_hash)
        amount = gas if token is None else tokens
        block = topup_transaction_verify(network=devnet, client=client, token=token, tx_hash=tx_hash,
                                         amount_base_units=amount)
        hot_wallet_topup_record(network=devnet, token=token, amount_base_units=amount, tx_hash=tx_hash,
                                block_number=block, reason="e2e top-up")
    return hot


def workers(chain) -> None:
    """One round of what the beat and the workers run: refunds and payouts advance, the signer signs, the sender
    broadcasts and follows, a block is mined, and the hot wallet's gas is posted."""
    settlement_tasks.advance_refunds()
    settlement_tasks.advance_payouts()
    outgoing_tasks.sign_outgoing_transactions()
    outgoing_tasks.send_outgoing_transactions()
    rpc(chain.rpc_url, "anvil_mine", ["0x1"])
    outgoing_tasks.send_outgoing_transactions()
    settlement_tasks.hot_cold()


def until(chain, done, what: str, rounds: int = 30):
    for _ in range(rounds):
        workers(chain)
        if done():
            return
    raise AssertionError(f"{what}: not done after {rounds} rounds")


def reconciled(devnet, chain) -> None:
    """The books balance, and the hot wallet on the chain (at a final block) equals its ledger accounts."""
    rpc(chain.rpc_url, "anvil_mine", ["0x5"])
    settlement_tasks.hot_cold()  # posts the gas of the ended transactions
    assert ledger_problems() == []
    summary = wallets_reconcile(network=devnet, client=RpcClient([chain.rpc_url], name="e2e-check"))
    assert (summary.status, summary.differences, summary.skipped) == ("reconciled", 0, []), summary


def test_paid_refunded_through_the_claim_link_paid_out_and_back_to_zero_with_the_sdk(
        sdk, live_server, secret_key, merchant, chain_env, devnet_chain):
    devnet, chain = chain_env, devnet_chain
    web3 = Web3(Web3.HTTPProvider(chain.rpc_url))
    usdt_contract = web3.eth.contract(address=to_checksum_address(chain.tokens["usdt"]), abi=ERC20)

    def on_chain(address: str) -> int:
        return usdt_contract.functions.balanceOf(to_checksum_address(address)).call()

    fees(merchant, bps=100)  # 1% of each charge
    hold(merchant, 3600)  # an hour's holding period before a charge is available
    hot = topped_up_hot_wallet(devnet, chain, gas=10 * ETH, tokens=20 * ONE_USDT)
    usable_address(merchant, address=PAYOUT_TO)  # allowlisted, its cooling-off period over
    before = {a: on_chain(a) for a in (CUSTOMER, PAYOUT_TO, hot.address)}

    # a $10 intent, paid with 10 USDT by a real token transfer (the test helper), final on the devnet
    settle(devnet, chain)
    intent = sdk.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "receipt_email": "customer@example.com",
        "payment_method_options": {"crypto": {"deposit_options": {"networks": ["bsc"]}}}})
    deposit = sdk.raw_request("post", f"/v1/test_helpers/payment_intents/{intent.id}/simulate_crypto_deposit",
                              network="bsc", token_currency="usdt")
    deposit_address = intent.next_action.crypto_display_details.deposit_addresses["bsc"].address
    mined(chain.rpc_url, sdk.deserialize(deposit, api_mode="V1").test_helper.transaction_hash)
    settle(devnet, chain, mine_blocks=3)
    settlement_tasks.post_charge_facts()
    assert sdk.v1.payment_intents.retrieve(intent.id).status == "succeeded"
    assert on_chain(deposit_address) == 10 * ONE_USDT

    # the balance grows: pending during the holding period (net of the 1% fee), then available
    balance = sdk.v1.balance.retrieve()
    assert [(b.amount, b.currency) for b in balance.pending] == [(990, "usd")]
    assert sum(b.amount for b in balance.available) == 0
    assert settlement_tasks.release_pending() == 0  # not yet
    assert ledger_release_matured(now=timezone.now() + timedelta(hours=1, seconds=5)) == 1  # an hour later
    balance = sdk.v1.balance.retrieve()
    assert [(b.amount, b.currency) for b in balance.available] == [(990, "usd")]
    assert balance.available[0]["crypto"][0]["amount_base_units"] == str(99 * ONE_USDT // 10)
    assert sum(b.amount for b in balance.pending) == 0
    reconciled(devnet, chain)

    # a partial refund of $4 without an address: it waits for the customer, the link e-mailed to receipt_email
    refund = sdk.v1.refunds.create(params={"payment_intent": intent.id, "amount": 400})
    assert refund.status == "requires_action"
    [email] = [m for m in mail.outbox if m.to == ["customer@example.com"]]
    link = re.search(r"https?://\S+/claim/\S+", email.body).group(0)
    assert link == refund.next_action.crypto_refund_claim.url

    # the customer opens the link and confirms an address, as a browser does (CSRF cookie and token)
    browser = requests.Session()
    page_url = live_server.url + "/claim/" + link.rsplit("/claim/", 1)[1]
    page = browser.get(page_url, timeout=30)
    assert page.status_code == 200 and "4 USDT" in page.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    refused = requests.post(page_url, data={"address": CUSTOMER, "address_confirm": CUSTOMER, "confirm": "on"},
                            timeout=30)  # without the CSRF cookie and token: refused, nothing claimed
    assert refused.status_code == 403 and Refund.objects.get(pk=refund.id).status == "requires_action"
    claimed = browser.post(page_url, data={"csrfmiddlewaretoken": token, "address": CUSTOMER,
                                           "address_confirm": CUSTOMER.lower(), "confirm": "on"},
                           headers={"Referer": page_url}, allow_redirects=False, timeout=30)
    assert claimed.status_code == 302
    assert sdk.v1.refunds.retrieve(refund.id).status == "pending"

    # the workers send it on chain and follow it to finality: the refund succeeds
    until(chain, lambda: Refund.objects.get(pk=refund.id).status == "succeeded", "the refund")
    refund = sdk.v1.refunds.retrieve(refund.id)
    assert refund.destination_details.crypto.address == CUSTOMER.lower()
    assert on_chain(CUSTOMER) - before[CUSTOMER] == 4 * ONE_USDT
    receipt = web3.eth.get_transaction_receipt(refund.destination_details.crypto.transaction_hash)
    assert receipt.status == 1 and receipt["from"].lower() == hot.address
    assert sdk.v1.payment_intents.retrieve(intent.id).amount_refunded == 400
    charge = sdk.v1.charges.retrieve(sdk.v1.payment_intents.retrieve(intent.id).latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (400, False)
    assert [e.data.object.id for e in sdk.v1.events.list(params={"type": "charge.refunded"}).auto_paging_iter()] \
        == [charge.id]
    assert list(Event.objects.filter(object_id=refund.id).order_by("sequence").values_list("type", flat=True)) == [
        "refund.created", "refund.updated", "refund.updated"]
    balance = sdk.v1.balance.retrieve()
    assert [(b.amount, b.currency) for b in balance.available] == [(590, "usd")]
    reconciled(devnet, chain)

    # a payout of the rest to the allowlisted address: paid once final
    payout = sdk.v1.payouts.create(params={"amount": 590, "currency": "usd",
                                           "crypto": {"network": "bsc", "token_currency": "usdt"}})
    assert payout.status == "pending" and payout.destination == PAYOUT_TO
    assert sum(b.amount for b in sdk.v1.balance.retrieve().available) == 0
    until(chain, lambda: Payout.objects.get(pk=payout.id).status == "paid", "the payout")
    payout = sdk.v1.payouts.retrieve(payout.id)
    assert payout.status == "paid"
    assert on_chain(PAYOUT_TO) - before[PAYOUT_TO] == 59 * ONE_USDT // 10
    receipt = web3.eth.get_transaction_receipt(payout.crypto.transaction_hash)
    assert receipt.status == 1 and receipt["from"].lower() == hot.address

    # the balance is back to zero, in cents and in base units
    balance = sdk.v1.balance.retrieve()
    assert sum(b.amount for b in balance.available) == 0 and sum(b.amount for b in balance.pending) == 0
    assert all(int(c["amount_base_units"]) == 0 for b in balance.available for c in b["crypto"])
    # the hot wallet sent exactly the refund and the payout
    assert before[hot.address] - on_chain(hot.address) == 4 * ONE_USDT + 59 * ONE_USDT // 10
    assert OutgoingTransaction.objects.filter(purpose__in=["refund", "payout"]).count() == 2

    # the balance transactions tell the same story: the charge (with its fee), the refund, the payout; nets add to 0
    txns = list(sdk.v1.balance_transactions.list(params={"limit": 2}).auto_paging_iter())
    assert [(t.type, t.source, t.amount, t.fee, t.net) for t in txns] == [
        ("payout", payout.id, -590, 0, -590), ("refund", refund.id, -400, 0, -400),
        ("charge", charge.id, 1000, 10, 990)]
    assert txns[2].fee_details[0].amount == 10 and txns[2].status == "available"
    assert sum(t.net for t in txns) == 0
    assert sum(int(t["crypto"]["net_base_units"]) for t in txns) == 0
    assert [t.id for t in sdk.v1.balance_transactions.list(params={"payout": payout.id}).auto_paging_iter()] == \
        [txns[0].id]

    # every step reconciles: the books balance and the hot wallet matches the chain at a final block
    rpc(chain.rpc_url, "anvil_mine", ["0x5"])
    settlement_tasks.hot_cold()
    assert ledger_problems() == []
    out = StringIO()
    call_command("ledger", "check", "--chain", "--network", devnet.code, stdout=out)
    assert re.search(r"wallets: reconciled at block \d+, [1-9]\d* balances checked, 0 differences", out.getvalue()) \
        and "skipped" not in out.getvalue(), out.getvalue()
