"""Payouts end to end on anvil with the signer: the hot wallet (funded in the test, and in the ledger as a sweep
would have put it there) sends one ERC-20 transfer per payout through the transaction manager; a final transfer
makes the payout `paid`, a reverted one `failed` with the money back in the available balance."""
import pytest
from eth_abi import encode as abi_encode

from payments.models import Event
from settlements.models import AccountKind, JournalTransaction, LedgerAccount, LedgerBalance
from settlements.payouts import payouts_advance
from settlements.selectors import ledger_problems
from settlements.services import Posting, journal_transaction_post, ledger_account_get
from tests.settlements.conftest import ONE_USDT, owed, token
from tests.settlements.payout_fixtures import RECIPIENT, create_payout, funded, usable_address
from tests.wallets.outgoing.conftest import sign_all
from wallets.chain.rpc import RpcClient
from wallets.devchain import erc20_balance_of, rpc
from wallets.outgoing import services as outgoing
from wallets.outgoing.models import OutgoingTransaction
from wallets.signer import signer_reset

pytestmark = [pytest.mark.usefixtures("ledger_ready"), pytest.mark.timeout(240)]
ETH = 10**18


def wait_receipt(chain, tx_hash: str) -> dict:
    for _ in range(400):
        receipt = rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash])
        if receipt:
            return receipt
        rpc(chain.rpc_url, "anvil_mine", ["0x1"])
    raise AssertionError(f"no receipt for {tx_hash}")


@pytest.fixture
def hot(devnet, devnet_chain, monkeypatch):
    """The devnet's hot wallet: registered, given native coin for gas and `held` USDT on chain (minted), and in the
    ledger `booked` USDT (Dr hot_wallet, Cr deposits: what a sweep posts)."""
    chain = devnet_chain
    monkeypatch.setenv(devnet.rpc_env, chain.rpc_url)
    signer_reset()
    client = RpcClient([chain.rpc_url], name="payout-test", retry_budget=1.0)
    sending = outgoing.sending_address_register(network=devnet, client=client)
    wait_receipt(chain, rpc(chain.rpc_url, "eth_sendTransaction", [
        {"from": chain.accounts[0], "to": sending.address, "value": hex(10 * ETH)}]))

    def fund(*, held: int, booked: int):
        mint = bytes.fromhex("40c10f19") + abi_encode(["address", "uint256"], [sending.address, held])
        wait_receipt(chain, rpc(chain.rpc_url, "eth_sendTransaction", [
            {"from": chain.accounts[0], "to": chain.tokens["usdt"], "data": "0x" + mint.hex()}]))
        usdt = token()
        hot_account = ledger_account_get(kind=AccountKind.HOT_WALLET, network_id=devnet.id, token_id=usdt.id,
                                         address=sending.address, livemode=False)
        deposits = ledger_account_get(kind=AccountKind.DEPOSITS, network_id=devnet.id, token_id=usdt.id,
                                      livemode=False)
        journal_transaction_post(kind="adjustment", source_type="test_sweep", source_id=sending.address,
                                 postings=[Posting(hot_account, booked), Posting(deposits, -booked)])

    yield sending, client, fund
    signer_reset()


def run_chain(devnet, devnet_chain, client) -> None:
    """The signer and the sender, as their workers would, until what was sent is final."""
    sign_all()
    outgoing.outgoing_transactions_process(network=devnet, client=client)
    outgoing.outgoing_transactions_process(network=devnet, client=client)
    rpc(devnet_chain.rpc_url, "anvil_mine", ["0x3"])
    outgoing.outgoing_transactions_process(network=devnet, client=client)


def hot_booked(sending) -> int:
    account = LedgerAccount.objects.get(kind=AccountKind.HOT_WALLET, address=sending.address, token=token())
    return LedgerBalance.objects.get(account=account).balance


def test_a_payout_is_sent_from_the_hot_wallet_and_paid_and_a_reverted_one_gives_the_money_back(
        api, merchant, devnet, devnet_chain, hot):
    sending, client, fund = hot
    usdt_contract = devnet_chain.tokens["usdt"]
    funded(merchant, 10 * ONE_USDT)
    usable_address(merchant)
    before = erc20_balance_of(devnet_chain.rpc_url, usdt_contract, RECIPIENT)

    # a payout while the hot wallet holds nothing waits, with its reason
    first = create_payout(api, 300).json()
    payouts_advance()
    assert api.get(f"/v1/payouts/{first['id']}").json()["crypto"]["pending_reason"] == "hot_wallet_insufficient_funds"

    # given the hot wallet holds 5 USDT on chain and 20 in the books (the chain short: the second send reverts)
    fund(held=5 * ONE_USDT, booked=20 * ONE_USDT)

    # when the beat task runs: the payout is in transit, in_transit debited and the hot wallet credited
    payouts_advance()
    body = api.get(f"/v1/payouts/{first['id']}").json()
    assert body["status"] == "in_transit"
    tx = OutgoingTransaction.objects.get(purpose="payout", source_reference=first["id"])
    assert tx.to_address == usdt_contract and tx.value_base_units == 0
    assert hot_booked(sending) == 17 * ONE_USDT

    # and once the transfer is final: paid, the liability settled, the recipient holds the amount
    run_chain(devnet, devnet_chain, client)
    payouts_advance()
    paid = api.get(f"/v1/payouts/{first['id']}").json()
    assert paid["status"] == "paid" and paid["crypto"]["transaction_hash"].startswith("0x")
    assert erc20_balance_of(devnet_chain.rpc_url, usdt_contract, RECIPIENT) - before == 3 * ONE_USDT
    receipt = rpc(devnet_chain.rpc_url, "eth_getTransactionReceipt", [paid["crypto"]["transaction_hash"]])
    assert int(receipt["status"], 16) == 1
    assert list(Event.objects.filter(object_id=first["id"]).order_by("sequence").values_list("type", flat=True)) \
        == ["payout.created", "payout.paid"]
    assert owed(merchant)["available"] == 7 * ONE_USDT
    payouts_advance()  # run again: nothing is posted twice
    assert JournalTransaction.objects.filter(source_id=first["id"]).count() == 3  # reserve, send, settle

    # when a payout of 4 USD is sent while the chain holds only 2 USDT: the transfer reverts
    second = create_payout(api, 400).json()
    payouts_advance()
    run_chain(devnet, devnet_chain, client)
    payouts_advance()

    # then it failed, the send was reversed and the 4 USDT are available again, with payout.failed
    failed = api.get(f"/v1/payouts/{second['id']}").json()
    assert (failed["status"], failed["failure_code"]) == ("failed", "transaction_reverted")
    assert failed["failure_balance_transaction"] is not None
    assert owed(merchant)["available"] == 7 * ONE_USDT
    assert hot_booked(sending) == 17 * ONE_USDT
    assert Event.objects.filter(object_id=second["id"], type="payout.failed").count() == 1
    assert erc20_balance_of(devnet_chain.rpc_url, usdt_contract, RECIPIENT) - before == 3 * ONE_USDT
    types = [t["type"] for t in api.get("/v1/balance_transactions").json()["data"]]
    assert types == ["payout_failure", "payout", "payout", "charge"]
    in_transit = LedgerAccount.objects.get(kind=AccountKind.IN_TRANSIT, token=token())
    reserved = LedgerAccount.objects.get(kind=AccountKind.MERCHANT_RESERVED, token=token())
    assert LedgerBalance.objects.get(account=in_transit).balance == 0
    assert LedgerBalance.objects.get(account=reserved).balance == 0
    assert ledger_problems() == []
