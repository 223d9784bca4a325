"""What the sweep kill test's children run (tests/wallets/chain/forker.py `call ...`): the sweeper's beat pass in an
endless loop, as a `chain` worker runs it. The signing step and the sender are tests/wallets/outgoing/loop.py."""
import time

import wallets.signer.local  # noqa: F401
from settlements import sweeps
from wallets.chain.rpc import RpcClient
from wallets.models import Network


def sweep_forever() -> None:
    network = Network.objects.get(code="devnet")
    client = RpcClient.for_network(network)
    while True:
        sweeps.sweeps_run(network=network, client=client)
        time.sleep(0.01)
