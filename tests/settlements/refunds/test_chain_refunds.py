"""End to end on anvil with the signer: a customer pays, the merchant refunds through the API, the customer claims it
on the hosted page, the hot wallet sends the token through the transaction manager, and the refund succeeds once the
transfer is final: the chain shows it and the ledger balances. A send that reverts gives the money back; a hot wallet
that holds too little keeps the refund pending with its reason."""
import pytest
from django.test import Client

from payments.models import Charge, Event
from settlements.hotcold.services import hot_wallet_topup_record
from settlements.models import AccountKind, JournalTransaction, LedgerAccount, LedgerBalance
from settlements.refunds import services as refunds
from settlements.refunds.models import Refund
from settlements.selectors import ledger_balances, ledger_problems
from settlements.services import Posting, journal_transaction_post, ledger_account_get, ledger_post_charge_facts
from tests.payments.conftest import create, mined, settle, simulate
from wallets.chain.rpc import RpcClient
from wallets.devchain import rpc
from wallets.faucet import faucet_send
from wallets.outgoing import services as outgoing
from wallets.signer import step as signer_step
from wallets.outgoing.models import OutgoingTransaction
from wallets.signer import signer_reset

from .conftest import CHECKSUMMED

pytestmark = pytest.mark.timeout(240)
ONE = 10**18  # the devnet tokens have 18 decimals


@pytest.fixture
def chain_env(devnet, anvil_chain, monkeypatch):
    monkeypatch.setenv(devnet.rpc_env, anvil_chain.rpc_url)
    signer_reset()  # a new wallet per test: forget the keys of the last one
    yield devnet
    signer_reset()


def paid(api, devnet, chain, amount_minor=1000):
    """A $10 intent paid with 10 USDT on anvil, final, its Charge posted to the ledger."""
    settle(devnet, chain)
    intent = create(api, amount=amount_minor)
    assert simulate(api, intent["id"]).status_code == 200
    settle(devnet, chain, mine_blocks=3)
    ledger_post_charge_facts()
    return Charge.objects.get(payment_intent_id=intent["id"])


def hot_wallet(devnet, chain, *, tokens: int):
    client = RpcClient([chain.rpc_url], name="refund-test", retry_budget=1.0)
    hot = outgoing.sending_address_register(network=devnet, client=client)
    rpc(chain.rpc_url, "anvil_setBalance", [hot.address, hex(10 * ONE)])
    if tokens:  # sent to the hot wallet and recorded as a top-up: the ledger's hot_wallet holds what refunds may send
        token = devnet.tokens.get(currency="usdt")
        receipt = mined(chain.rpc_url, faucet_send(network=devnet, token=token, to_address=hot.address,
                                                   amount_base_units=tokens))
        hot_wallet_topup_record(network=devnet, token=token, amount_base_units=tokens,
                                tx_hash=receipt["transactionHash"], block_number=int(receipt["blockNumber"], 16),
                                reason="refund test top-up")
    return hot, client


def token_balance(chain, token, address) -> int:
    data = "0x70a08231" + address[2:].lower().rjust(64, "0")
    return int(rpc(chain.rpc_url, "eth_call", [{"to": token.contract_address, "data": data}, "latest"]), 16)


def run_manager(devnet, client, chain, rounds: int = 8):
    """Sign, broadcast and follow the outgoing transactions to finality (the signer and sender, in this process)."""
    for _ in range(rounds):
        while signer_step.outgoing_transaction_sign_next() is not None:
            pass
        outgoing.outgoing_transactions_process(network=devnet, client=client)
        rpc(chain.rpc_url, "anvil_mine", ["0x1"])
    outgoing.outgoing_transactions_process(network=devnet, client=client)


def ledger(kind, refund, **kwargs) -> int:
    account = LedgerAccount.objects.filter(kind=kind, network=refund.network, token=refund.token, **kwargs).first()
    return LedgerBalance.objects.get(account=account).balance if account else 0


def test_a_claimed_refund_is_sent_from_the_hot_wallet_and_succeeds_at_finality(api, chain_env, anvil_chain):
    devnet, chain = chain_env, anvil_chain
    charge = paid(api, devnet, chain)
    hot, client = hot_wallet(devnet, chain, tokens=50 * ONE)
    token = devnet.tokens.get(currency="usdt")
    customer_before = token_balance(chain, token, CHECKSUMMED)
    hot_before = token_balance(chain, token, hot.address)

    # the merchant refunds $4 without an address; the customer claims it on the hosted page
    body = api.post("/v1/refunds", {"payment_intent": charge.payment_intent_id, "amount": 400}).json()
    assert body["status"] == "requires_action"
    claim = Client().post(body["next_action"]["crypto_refund_claim"]["url"].split("127.0.0.1:8000")[-1],
                          {"address": CHECKSUMMED, "address_confirm": CHECKSUMMED.lower(), "confirm": "on"})
    assert claim.status_code == 302
    refund = Refund.objects.get(pk=body["id"])
    assert refund.status == "pending" and refund.amount_base_units == 4 * ONE

    # the beat task sends it: one outgoing transaction, the ledger's Dr in_transit Cr hot_wallet in its transaction
    assert refunds.refunds_advance().as_json() == {"sent": 1}
    assert refunds.refunds_advance().as_json() == {}  # run twice: never a second transaction
    refund.refresh_from_db()
    tx = refund.outgoing_transaction
    assert (tx.purpose, tx.source_reference, tx.from_address, tx.to_address) == (
        "refund", refund.id, hot.address, token.contract_address)
    assert ledger(AccountKind.IN_TRANSIT, refund) == 4 * ONE
    assert ledger(AccountKind.HOT_WALLET, refund, address=hot.address) == (50 - 4) * ONE

    run_manager(devnet, client, chain)
    assert OutgoingTransaction.objects.get(pk=tx.pk).status == "final"
    assert refunds.refunds_advance().as_json() == {"succeeded": 1}
    retrieved = api.get(f"/v1/refunds/{refund.id}").json()
    assert retrieved["status"] == "succeeded"
    tx = OutgoingTransaction.objects.select_related("mined_attempt").get(pk=tx.pk)
    assert retrieved["destination_details"]["crypto"]["transaction_hash"] == tx.mined_attempt.tx_hash

    # the chain shows the transfer; the ledger settled the reservation and balances
    assert token_balance(chain, token, CHECKSUMMED) - customer_before == 4 * ONE
    assert hot_before - token_balance(chain, token, hot.address) == 4 * ONE
    assert ledger(AccountKind.IN_TRANSIT, refund) == 0 and ledger(AccountKind.MERCHANT_RESERVED, refund,
                                                                   merchant=refund.merchant) == 0
    [mine] = ledger_balances(merchant=refund.merchant, livemode=False)
    assert (mine.available, mine.reserved) == (6 * ONE, 0)
    assert list(JournalTransaction.objects.filter(source_id=refund.id).order_by("id").values_list("kind", flat=True)) \
        == ["refund_reserve", "refund_send", "refund_settle"]
    assert ledger_problems() == []
    types = list(Event.objects.filter(object_id=refund.id).order_by("sequence").values_list("type", flat=True))
    assert types == ["refund.created", "refund.updated", "refund.updated"]
    assert api.get(f"/v1/charges/{charge.id}").json()["amount_refunded"] == 400
    # a sent refund cannot be canceled
    assert api.post(f"/v1/refunds/{refund.id}/cancel").json()["error"]["code"] == "refund_unexpected_state"


def test_a_reverted_send_fails_the_refund_and_gives_the_money_back(api, chain_env, anvil_chain, settings):
    devnet, chain = chain_env, anvil_chain
    charge = paid(api, devnet, chain)
    _hot, client = hot_wallet(devnet, chain, tokens=50 * ONE)
    settings.GATEWAY_REFUND_TOKEN_GAS_LIMIT = 24_000  # too little for an ERC-20 transfer: it reverts on chain
    body = api.post("/v1/refunds", {"charge": charge.id, "crypto[destination_address]": CHECKSUMMED}).json()
    assert refunds.refunds_advance().as_json() == {"sent": 1}
    run_manager(devnet, client, chain)
    refund = Refund.objects.get(pk=body["id"])
    assert refund.outgoing_transaction.status == "failed"

    assert refunds.refunds_advance().as_json() == {"failed": 1}
    failed = api.get(f"/v1/refunds/{refund.id}").json()
    assert (failed["status"], failed["failure_reason"]) == ("failed", "transaction_reverted")
    # the money is back where it came from: the merchant's available balance, the hot wallet's account
    [mine] = ledger_balances(merchant=refund.merchant, livemode=False)
    assert (mine.available, mine.reserved) == (10 * ONE, 0)
    assert ledger(AccountKind.IN_TRANSIT, refund) == 0
    assert ledger(AccountKind.HOT_WALLET, refund, address=refund.outgoing_transaction.from_address) == 50 * ONE
    assert api.get(f"/v1/charges/{charge.id}").json()["amount_refunded"] == 0
    types = list(Event.objects.filter(object_id=refund.id).order_by("sequence").values_list("type", flat=True))
    assert types == ["refund.created", "refund.failed"]
    assert ledger_problems() == []
    # the Charge can be refunded again
    assert api.post("/v1/refunds", {"charge": charge.id, "crypto[destination_address]": CHECKSUMMED}
                    ).status_code == 200


def test_a_short_hot_wallet_keeps_the_refund_pending_with_a_reason(api, chain_env, anvil_chain, caplog):
    devnet, chain = chain_env, anvil_chain
    charge = paid(api, devnet, chain)
    hot_wallet(devnet, chain, tokens=ONE)  # 1 USDT: less than the refund
    body = api.post("/v1/refunds", {"charge": charge.id, "crypto[destination_address]": CHECKSUMMED}).json()
    assert refunds.refunds_advance().as_json() == {"waiting": 1}
    assert refunds.refunds_advance().as_json() == {"waiting": 1}
    waiting = api.get(f"/v1/refunds/{body['id']}").json()
    assert waiting["status"] == "pending" and waiting["crypto"]["pending_reason"] == "hot_wallet_insufficient_funds"
    assert "hot wallet floor" in caplog.text
    types = list(Event.objects.filter(object_id=body["id"]).order_by("sequence").values_list("type", flat=True))
    assert types == ["refund.created", "refund.updated"]  # the reason announced once
    assert not OutgoingTransaction.objects.exists()
    # still cancelable: nothing was sent
    assert api.post(f"/v1/refunds/{body['id']}/cancel").json()["status"] == "canceled"
    assert ledger_problems() == []


def test_another_features_send_in_flight_leaves_the_hot_wallet_short_for_a_refund(api, chain_env, anvil_chain):
    devnet, chain = chain_env, anvil_chain
    charge = paid(api, devnet, chain)
    hot, _client = hot_wallet(devnet, chain, tokens=12 * ONE)  # on chain and in the ledger: 12 USDT
    token = devnet.tokens.get(currency="usdt")
    # a payout of 5 USDT recorded and posted, not mined yet: the chain still shows 12, the ledger's hot wallet 7
    accounts = [ledger_account_get(kind=kind, network_id=devnet.id, token_id=token.id, livemode=False,
                                   address=hot.address if kind == AccountKind.HOT_WALLET else "")
                for kind in (AccountKind.IN_TRANSIT, AccountKind.HOT_WALLET)]
    journal_transaction_post(kind=JournalTransaction.Kind.PAYOUT_SEND, source_type="payout", source_id="po_inflight",
                             postings=[Posting(accounts[0], 5 * ONE), Posting(accounts[1], -5 * ONE)])
    body = api.post("/v1/refunds", {"charge": charge.id, "crypto[destination_address]": CHECKSUMMED}).json()

    assert refunds.refunds_advance().as_json() == {"waiting": 1}  # $10 = 10 USDT > 7

    waiting = api.get(f"/v1/refunds/{body['id']}").json()
    assert waiting["status"] == "pending" and waiting["crypto"]["pending_reason"] == "hot_wallet_insufficient_funds"
    assert not OutgoingTransaction.objects.filter(purpose="refund").exists()
