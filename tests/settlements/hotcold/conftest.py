"""Fixtures of the hot/cold tests: an anvil of this package's own, the devnet network on it, a hot wallet registered
(a fresh master seed per test, so a fresh address) and funded with native coin whose top-up is recorded, a fresh
cold address, and helpers that drive the transaction manager (sign, send, mine) to finality."""
import os

import pytest
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector

from gateway.celery import app as celery_app
from settlements.hotcold.models import HotColdSetting
from settlements.hotcold.services import hot_wallet_topup_record, topup_transaction_verify
from settlements.hotcold.services import wallet_balance
from settlements.models import AccountKind, LedgerBalance
from tests.chain import register_devnet_for_tests, running_anvil
from tests.wallets.outgoing.conftest import ETH, sign_all, wait_for
from wallets.chain.rpc import RpcClient
from wallets.devchain import erc20_balance_of, rpc
from wallets.models import Token
from wallets.outgoing import services as outgoing
from wallets.outgoing.models import OutgoingTransaction
from wallets.signer import signer_reset

ONE = 10**18  # the devnet test tokens have 18 decimals
MINT = function_signature_to_4byte_selector("mint(address,uint256)")


@pytest.fixture(scope="package")
def chain():
    with running_anvil() as anvil:
        yield anvil


@pytest.fixture(autouse=True)
def sent_tasks(monkeypatch) -> list[str]:
    """Task messages sent after commits, captured (nothing reaches the broker)."""
    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, *a, **kw: sent.append(name))
    return sent


@pytest.fixture
def network(chain, networks, wallet, monkeypatch):
    network = register_devnet_for_tests(chain)
    monkeypatch.setenv(network.rpc_env, chain.rpc_url)
    signer_reset()
    yield network
    signer_reset()


@pytest.fixture
def client(chain):
    return RpcClient([chain.rpc_url], name="hotcold-test", retry_budget=1.0)


def send(chain, tx: dict) -> str:
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [tx])
    wait_for(lambda: rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash]), what="a funding transaction")
    return tx_hash


def fund_native(chain, address: str, amount: int) -> str:
    return send(chain, {"from": chain.accounts[0], "to": address, "value": hex(amount)})


def mint(chain, *, token: str, to: str, amount: int) -> str:
    """Mint test tokens to `to` (anvil's account 0 is the tokens' minter); the transaction hash."""
    data = MINT + abi_encode(["address", "uint256"], [to, amount])
    return send(chain, {"from": chain.accounts[0], "to": token, "data": "0x" + data.hex()})


def record_topup(network, client, token, amount: int, tx_hash: str, *, verify: bool = True, **kwargs):
    """Record a top-up as `manage.py ledger topup` does: checked on the chain (amount too, unless verify=False)."""
    block_number = topup_transaction_verify(network=network, client=client, token=token, tx_hash=tx_hash,
                                            amount_base_units=amount, check_amount=verify)
    return hot_wallet_topup_record(network=network, token=token, amount_base_units=amount, tx_hash=tx_hash,
                                   block_number=block_number, reason=kwargs.pop("reason", "test top-up"), **kwargs)


@pytest.fixture
def hot(chain, network, client):
    """The devnet hot wallet, funded with 10 ETH by anvil's account 0, the top-up recorded in the ledger and final."""
    sending = outgoing.sending_address_register(network=network, client=client)
    tx_hash = fund_native(chain, sending.address, 10 * ETH)
    record_topup(network, client, None, 10 * ETH, tx_hash)
    mine(chain, 3)
    return sending


@pytest.fixture
def usdt(network) -> Token:
    return Token.objects.get(network=network, currency="usdt")


@pytest.fixture
def cold_address() -> str:
    return "0x" + os.urandom(20).hex()


@pytest.fixture
def setting(usdt, cold_address) -> HotColdSetting:
    return HotColdSetting.objects.create(token=usdt, hot_floor_base_units=10 * ONE, hot_ceiling_base_units=100 * ONE,
                                         native_floor_base_units=ETH, cold_address=cold_address)


def mine(chain, blocks: int = 1) -> None:
    rpc(chain.rpc_url, "anvil_mine", [hex(blocks)])


def drive(chain, network, client, *, rounds: int = 10) -> None:
    """Sign, broadcast, mine and follow every open outgoing transaction until all have ended."""
    ended = (OutgoingTransaction.Status.FINAL, OutgoingTransaction.Status.FAILED, OutgoingTransaction.Status.CANCELLED)
    for _ in range(rounds):
        sign_all()
        outgoing.outgoing_transactions_process(network=network, client=client)
        mine(chain, 3)
        outgoing.outgoing_transactions_process(network=network, client=client)
        if not OutgoingTransaction.objects.exclude(status__in=ended).exists():
            return
    raise AssertionError("outgoing transactions did not end: "
                         + str(list(OutgoingTransaction.objects.values_list("id", "status"))))


def native_balance(chain, address: str) -> int:
    return int(rpc(chain.rpc_url, "eth_getBalance", [address, "latest"]), 16)


def token_balance(chain, token: Token, address: str) -> int:
    return erc20_balance_of(chain.rpc_url, token.contract_address, address)


def ledger(kind: str, network, token: Token | None, address: str = "") -> int:
    if kind in (AccountKind.HOT_WALLET, AccountKind.COLD_WALLET):
        return wallet_balance(kind=kind, network=network, token_id=token.id if token else None, address=address)
    value = LedgerBalance.objects.filter(account__kind=kind, account__network=network,
                                         account__token=token).values_list("balance", flat=True).first()
    return int(value or 0)
