"""Fixtures of the transaction manager's tests: an anvil of this package's own (the tests change its base fee,
automine and head), the devnet network pointing at it, and a funded hot wallet."""
import time

import pytest

from tests.chain import register_devnet_for_tests, running_anvil
from wallets.chain.rpc import RpcClient
from wallets.devchain import rpc
from wallets.outgoing import services
from wallets.signer import step as signer_step
from wallets.signer import signer_reset

ETH = 10**18


@pytest.fixture(scope="package")
def chain():
    with running_anvil() as anvil:
        yield anvil


@pytest.fixture
def network(chain, networks, wallet, monkeypatch):
    network = register_devnet_for_tests(chain)
    monkeypatch.setenv(network.rpc_env, chain.rpc_url)
    signer_reset()  # a new wallet per test: forget the keys of the last one
    rpc(chain.rpc_url, "evm_setAutomine", [True])
    yield network
    signer_reset()
    rpc(chain.rpc_url, "evm_setAutomine", [True])


@pytest.fixture
def client(chain):
    return RpcClient([chain.rpc_url], name="outgoing-test", retry_budget=1.0)


@pytest.fixture
def hot(chain, network, client):
    """The network's hot wallet, registered (nonce from the chain) and funded with 100 ETH by anvil's account 0."""
    sending = services.sending_address_register(network=network, client=client)
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [{"from": chain.accounts[0], "to": sending.address,
                                                           "value": hex(100 * ETH)}])
    wait_for(lambda: rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash]), what="the funding")
    return sending


def wait_for(predicate, *, what: str, timeout: float = 60.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
    return result


def balance(chain, address: str) -> int:
    return int(rpc(chain.rpc_url, "eth_getBalance", [address, "latest"]), 16)


def mine(chain, blocks: int = 1) -> None:
    rpc(chain.rpc_url, "anvil_mine", [hex(blocks)])


def sign_all() -> int:
    signed = 0
    while signer_step.outgoing_transaction_sign_next() is not None:
        signed += 1
    return signed
