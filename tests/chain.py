"""A real anvil chain for the tests, with the test USDT and USDC deployed and ten funded accounts.

Use it from any conftest (or test module) by importing the session-scoped fixture:

    from tests.chain import anvil_chain  # noqa: F401

    def test_something(anvil_chain, db):
        network = register_devnet_for_tests(anvil_chain)
        ...

Outside pytest, `running_anvil()` is the same thing as a context manager. Each pytest-xdist worker gets its own
chain on its own free port. The chain lives for the whole session, so tests must not rely on absolute balances or
block numbers another test may have moved (use anvil's evm_snapshot / evm_revert when a test needs a clean slate).
"""
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from subprocess import Popen

import pytest

from wallets import devchain


@dataclass(frozen=True)
class AnvilChain:
    rpc_url: str
    port: int
    tokens: dict[str, str]  # {"usdt": "0x...", "usdc": "0x..."}, lower case
    accounts: tuple[str, ...]  # the ten funded accounts, lower case; accounts[0] deployed the tokens
    private_keys: tuple[str, ...]  # "0x..." keys of `accounts`, same order
    process: Popen = field(repr=False, compare=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_anvil(*, block_time: float | None = None) -> Iterator[AnvilChain]:
    """Start anvil on a free port, deploy and fund the test tokens, yield the chain, stop anvil."""
    for attempt in range(3):  # another process may take the port between free_port() and anvil's bind
        port = free_port()
        try:
            process = devchain.start_anvil(port, block_time)
            break
        except devchain.DevchainError:
            if attempt == 2:
                raise
    try:
        rpc_url = devchain.local_rpc_url(port)
        tokens = devchain.deploy_test_tokens(rpc_url)
        accounts = tuple(devchain.eth_accounts(rpc_url)[: devchain.FUNDED_ACCOUNT_COUNT])
        keys = dict(zip(devchain.DEV_ACCOUNTS, devchain.DEV_PRIVATE_KEYS))
        yield AnvilChain(
            rpc_url=rpc_url, port=port, tokens=tokens, accounts=accounts,
            private_keys=tuple(keys[a] for a in accounts), process=process,
        )
    finally:
        devchain.stop_anvil(process)


OTHER_CHAIN_ID = devchain.CHAIN_ID + 1


@contextmanager
def running_other_chain(chain_id: int = OTHER_CHAIN_ID) -> Iterator[str]:
    """A bare anvil (no tokens) of another chain id on a free port: what an RPC URL pointing at the wrong chain
    (a testnet, a reset devnet) answers. Yields its URL."""
    for attempt in range(3):
        port = free_port()
        try:
            process = devchain.start_anvil(port, chain_id=chain_id)
            break
        except devchain.DevchainError:
            if attempt == 2:
                raise
    try:
        yield devchain.local_rpc_url(port)
    finally:
        devchain.stop_anvil(process)


@pytest.fixture(scope="session")
def anvil_chain() -> Iterator[AnvilChain]:
    with running_anvil() as chain:
        yield chain


def register_devnet_for_tests(chain: AnvilChain):
    """Make the chain's `devnet` the active test-mode bsc network; call it inside a test with database access."""
    return devchain.register_devnet(chain.rpc_url, chain.tokens)
