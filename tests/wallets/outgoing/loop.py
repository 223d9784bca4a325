"""What the kill test's children run (tests/wallets/chain/forker.py `call ...`): the signing step, as a `signer`
worker runs it, and the sender, as a `chain` worker runs it, each in an endless loop on the devnet. Everything is
imported at module level (in the forker, before it forks) so that a child starts working at once."""
import time

import wallets.signer.local  # noqa: F401
from wallets.chain.rpc import RpcClient
from wallets.models import Network
from wallets.outgoing import services
from wallets.signer import step as signer_step


def sign_forever() -> None:
    while True:
        if signer_step.outgoing_transaction_sign_next() is None:
            time.sleep(0.005)


def send_forever() -> None:
    network = Network.objects.get(code="devnet")
    client = RpcClient.for_network(network)
    while True:
        services.outgoing_transactions_process(network=network, client=client)
        time.sleep(0.005)
