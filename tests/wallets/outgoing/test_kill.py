"""The signer and the sender, each in its own process, killed with SIGKILL at random moments, 20 times each, while
transactions keep coming. Each run is a child forked from a warm Django process (tests/wallets/chain/forker.py)
looping over the signing step or the sender (loop.py) against the test database and this package's anvil, killed -9
after a random 0.05-0.8 s. Blocks come only when the test mines them and a pending transaction is replaced at once,
so fee bumps are signed and sent under the kills as well. Then a last run finishes the work, and: every nonce of the
hot wallet was used exactly once, every transaction the chain holds from it is one we stored before it was sent,
every transaction is final, and the recipient got exactly what was sent (nothing lost, nothing twice)."""
import os
import random
import time
from collections import Counter

import pytest
from eth_utils import keccak

from tests.wallets.chain.test_scanner_crash import Forker
from tests.wallets.outgoing.conftest import balance, mine, wait_for
from tests.wallets.test_signer import _database_url
from wallets.devchain import rpc
from wallets.outgoing import services
from wallets.signer import step as signer_step
from wallets.outgoing.models import OutgoingAttempt, OutgoingTransaction, OutgoingTransactionEvent, SendingAddress

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
S = OutgoingTransaction.Status
RECIPIENT = "0x" + "4b" * 20
KILLS = 40  # 20 of the signer, 20 of the sender


@pytest.fixture
def forker(chain, network, tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings.test", "DATABASE_URL": _database_url(),
           network.rpc_env: chain.rpc_url, "CELERY_BROKER_URL": "memory://", "PYTHONUNBUFFERED": "1"}
    started = Forker(env, tmp_path)
    yield started
    started.close()


def create(network, rng, values):
    value = rng.randint(1, 10**12)
    services.outgoing_transaction_create(network=network, to_address=RECIPIENT, value_base_units=value,
                                         gas_limit=21_000, purpose="test")
    values.append(value)


def chain_transactions_from(chain, address: str, first_block: int) -> list[dict]:
    head = int(rpc(chain.rpc_url, "eth_blockNumber"), 16)
    found = []
    for number in range(first_block, head + 1):
        block = rpc(chain.rpc_url, "eth_getBlockByNumber", [hex(number), True])
        found += [tx for tx in block["transactions"] if tx["from"].lower() == address]
    return found


def test_signer_and_sender_killed_at_random_moments_never_reuse_a_nonce_nor_send_what_is_not_stored(
    chain, network, hot, client, forker
):
    rng = random.Random(int(os.environ.get("CRASH_TEST_SEED", "20261203")))
    first_block = int(rpc(chain.rpc_url, "eth_blockNumber"), 16)
    before = balance(chain, RECIPIENT)
    values: list[int] = []
    for _ in range(10):
        create(network, rng, values)
    # Blocks only when the test mines them, and a transaction found pending is replaced at once: fee bumps (new
    # attempts of the same nonce) are signed and sent while the kills land, too
    network.tx_replace_seconds = 0
    network.save(update_fields=["tx_replace_seconds"])
    rpc(chain.rpc_url, "evm_setAutomine", [False])

    started = time.monotonic()
    for _ in range(KILLS // 2):
        # The signer and the sender, each killed at its own random moment
        signer_pid = forker.start("call", "tests.wallets.outgoing.loop.sign_forever")
        sender_pid = forker.start("call", "tests.wallets.outgoing.loop.send_forever")
        lives = sorted([(rng.uniform(0.05, 0.8), signer_pid), (rng.uniform(0.05, 0.8), sender_pid)])
        time.sleep(lives[0][0])
        forker.kill(lives[0][1])
        time.sleep(lives[1][0] - lives[0][0])
        forker.kill(lives[1][1])
        for _ in range(rng.randint(0, 3)):
            create(network, rng, values)
        if rng.random() < 0.5:
            mine(chain, rng.randint(1, 3))
    kill_seconds = time.monotonic() - started
    signed_by_killed = OutgoingAttempt.objects.count()
    events_by_killed = Counter(OutgoingTransactionEvent.objects.values_list("to_status", flat=True))
    assert signed_by_killed > 0  # the killed runs did work (and were killed in the middle of it)

    # A last run, not killed, finishes the work
    rpc(chain.rpc_url, "evm_setAutomine", [True])
    def all_final():
        services.outgoing_transactions_process(network=network, client=client)
        while signer_step.outgoing_transaction_sign_next() is not None:
            pass
        if OutgoingTransaction.objects.exclude(status=S.FINAL).exists():
            mine(chain)
            return False
        return True

    wait_for(all_final, what="every transaction to be final", timeout=180, interval=0.1)

    count = len(values)
    txs = list(OutgoingTransaction.objects.select_related("mined_attempt").order_by("nonce"))
    assert [tx.nonce for tx in txs] == list(range(count))
    assert SendingAddress.objects.get(pk=hot.pk).next_nonce == count
    assert int(rpc(chain.rpc_url, "eth_getTransactionCount", [hot.address, "latest"]), 16) == count

    stored = {a.tx_hash: a for a in OutgoingAttempt.objects.all()}
    for attempt in stored.values():  # the stored bytes are what the hash names
        assert "0x" + keccak(bytes(attempt.raw_transaction)).hex() == attempt.tx_hash
    onchain = chain_transactions_from(chain, hot.address, first_block)
    assert len(onchain) == count
    assert not [n for n, c in Counter(int(t["nonce"], 16) for t in onchain).items() if c > 1]
    assert all(t["hash"] in stored for t in onchain), "a transaction on chain that was never stored"
    assert {t["hash"] for t in onchain} == {tx.mined_attempt.tx_hash for tx in txs}
    assert balance(chain, RECIPIENT) - before == sum(values)
    assert events_by_killed[S.BROADCAST] > 0 and events_by_killed[S.MINED] > 0
    print(f"\n{KILLS} kills in {kill_seconds:.1f} s, {count} transactions, {len(stored)} attempts; "
          f"by the killed runs: {dict(events_by_killed)}")
