"""Helpers of the sweep tests: a hot wallet with its Sweeper on the devnet, paid intents, and the transaction
manager driven by hand (sign, broadcast, mine, follow to finality) as its workers would."""
import time

from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector

from payments.models import Charge, PaymentIntent
from settlements import sweeps
from settlements.models import SweepPolicy
from settlements.tasks import post_charge_facts
from tests.payments.conftest import create, settle
from wallets import devchain
from wallets.chain.rpc import RpcClient
from wallets.devchain import rpc
from wallets.models import OutgoingTransaction, Token
from wallets.outgoing import services as outgoing
from wallets.signer import step as signer_step
from wallets.signer import signer_reset

ETH = 10**18
ENDED = ("final", "failed", "cancelled")


def client_for(network) -> RpcClient:
    return RpcClient.for_network(network)


def hot_wallet(network, chain):
    """The network's hot wallet (registered by the signer, as `manage.py hot_wallet` does), with 1000 ETH for gas.
    The signer forgets the keys of the last test's wallet first."""
    signer_reset()
    hot = outgoing.sending_address_register(network=network, client=client_for(network))
    rpc(chain.rpc_url, "anvil_setBalance", [hot.address, hex(1000 * ETH)])
    return hot


def drive(network, chain, *, until=None, rounds: int = 200) -> None:
    """Sign what waits, broadcast, mine a block, follow receipts, until no outgoing transaction is open (or
    `until()` holds)."""
    client = client_for(network)
    for _ in range(rounds):
        while signer_step.outgoing_transaction_sign_next() is not None:
            pass
        outgoing.outgoing_transactions_process(network=network, client=client)
        if until is not None and until():
            return
        if until is None and not OutgoingTransaction.objects.filter(network=network).exclude(
                status__in=ENDED).exists():
            return
        rpc(chain.rpc_url, "anvil_mine", ["0x1"])
    raise AssertionError("outgoing transactions still open: " + repr(list(
        OutgoingTransaction.objects.exclude(status__in=ENDED).values_list("id", "status"))))


def sweeper_ready(network, chain) -> str:
    """Deploy the network's Sweeper through the manager and follow it to finality."""
    address = sweeps.sweeper_deploy(network=network)
    drive(network, chain)
    assert rpc(chain.rpc_url, "eth_getCode", [address, "latest"]) not in ("0x", "")
    return address


def policy(network, currency: str = "usdt", **fields) -> SweepPolicy:
    token = Token.objects.get(network=network, currency=currency)
    defaults = {"min_amount_base_units": 1, "batch_window_seconds": 0, "max_batch_size": 10, "max_gas_price_wei": None,
                **fields}
    return SweepPolicy.objects.update_or_create(network=network, token=token, defaults=defaults)[0]


def paid_intents(api, network, chain, count: int, *, amount: int = 1000) -> list[Charge]:
    """`count` intents paid on chain in full (one mintBatch of the test USDT to their deposit addresses: the faucet's
    one transfer per intent is slower), scanned to finality, charged and posted to the ledger."""
    settle(network, chain)  # the scanner's cursor starts at the head: the payments come after it
    ids = [create(api, amount=amount)["id"] for _ in range(count)]
    addresses = list(PaymentIntent.objects.filter(id__in=ids).values_list("deposit_address__address", flat=True))
    token = Token.objects.get(network=network, currency="usdt")
    data = function_signature_to_4byte_selector("mintBatch(address[],uint256)") + abi_encode(
        ["address[]", "uint256"], [addresses, amount * 10**(token.decimals - 2)])
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [{"from": chain.accounts[0], "to": token.contract_address,
                                                          "data": "0x" + data.hex()}])
    assert int(wait(lambda: rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash]))["status"], 16) == 1
    settle(network, chain, mine_blocks=3)
    while post_charge_facts():
        pass
    charges = list(Charge.objects.filter(payment_intent_id__in=ids).select_related("transfer__deposit_address"))
    assert len(charges) == count
    return charges


def token_balance(chain, token: str, owner: str) -> int:
    return devchain.erc20_balance_of(chain.rpc_url, token, owner)


def wait(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return value
