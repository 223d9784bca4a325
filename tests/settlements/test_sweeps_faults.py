"""Sweeps under faults, on this module's own anvil (rewriting history must not disturb the session's chain): a sweep
reorged away is sent again and counted once; the signer, the sender and the sweeper killed -9 at random moments
lose nothing and pay nothing twice."""
import os
import random
import time
from collections import Counter

import pytest

from settlements.models import AccountKind, JournalTransaction, Sweep, SweepItem
from settlements.selectors import ledger_problems
from settlements import sweeps
from tests.chain import running_anvil
from tests.wallets.chain.test_scanner_crash import Forker
from tests.wallets.outgoing.test_kill import chain_transactions_from
from tests.wallets.test_signer import _database_url
from wallets.devchain import rpc
from wallets.models import OutgoingAttempt, OutgoingTransaction, SendingAddress, Token
from wallets.outgoing import services as outgoing

from .sweeps_helpers import client_for, drive, hot_wallet, paid_intents, policy, sweeper_ready, token_balance
from .test_sweeps import ledger

pytestmark = pytest.mark.usefixtures("ledger_ready")


@pytest.fixture(scope="module")
def devnet_chain():
    with running_anvil() as chain:
        yield chain


def test_a_sweep_reorged_away_is_sent_again_and_counted_once(api, merchant, devnet, devnet_chain):
    chain = devnet_chain
    hot = hot_wallet(devnet, chain)
    sweeper_ready(devnet, chain)
    policy(devnet)
    usdt = Token.objects.get(network=devnet, currency="usdt")
    charges = paid_intents(api, devnet, chain, 3)
    total = sum(c.transfer.amount_base_units for c in charges)
    [sweep_id] = sweeps.sweeps_run(network=devnet, client=client_for(devnet)).sent
    tx = Sweep.objects.get(pk=sweep_id).transaction
    drive(devnet, chain, until=lambda: OutgoingTransaction.objects.get(pk=tx.pk).status == "mined")
    tx.refresh_from_db()
    old_block = (tx.block_number, tx.block_hash)
    assert token_balance(chain, usdt.contract_address, hot.address) == total

    # Given the sweep's block is replaced by an empty one (and the node forgets the transaction)
    depth = int(rpc(chain.rpc_url, "eth_blockNumber"), 16) - tx.block_number + 1
    rpc(chain.rpc_url, "anvil_reorg", [depth, []])
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    rpc(chain.rpc_url, "anvil_dropTransaction", [tx.mined_attempt.tx_hash])
    assert token_balance(chain, usdt.contract_address, hot.address) == 0
    assert sweeps.sweeps_run(network=devnet, client=client_for(devnet)).settled == 0  # not final: nothing settles

    # When the manager sees it, sends the same bytes again, and the chain makes them final
    drive(devnet, chain)
    rpc(chain.rpc_url, "evm_setAutomine", [True])
    assert sweeps.sweeps_run(network=devnet, client=client_for(devnet)).settled == 1

    # Then it was swept once, counted once
    tx.refresh_from_db()
    assert (tx.status, tx.tx_type) == ("final", 4) and (tx.block_number, tx.block_hash) != old_block
    assert "reorged" in list(tx.events.values_list("to_status", flat=True))
    assert OutgoingAttempt.objects.filter(transaction=tx).count() == 1
    assert token_balance(chain, usdt.contract_address, hot.address) == total
    assert [token_balance(chain, usdt.contract_address, c.transfer.deposit_address.address) for c in charges] == [0] * 3
    assert JournalTransaction.objects.filter(source_type="sweep", kind="sweep_settle").count() == 1
    assert ledger(AccountKind.HOT_WALLET, devnet, usdt, hot.address) == total
    assert ledger(AccountKind.IN_TRANSIT, devnet, usdt) == 0 and ledger_problems() == []


KILLS = 30
LOOPS = {"signer": "tests.wallets.outgoing.loop.sign_forever", "sender": "tests.wallets.outgoing.loop.send_forever",
         "sweeper": "tests.settlements.sweeps_loop.sweep_forever"}


@pytest.mark.slow
def test_signer_sender_and_sweeper_killed_at_random_moments_lose_nothing_and_pay_nothing_twice(
        api, merchant, devnet, devnet_chain, tmp_path):
    chain = devnet_chain
    rng = random.Random(int(os.environ.get("CRASH_TEST_SEED", "20261203")))
    hot = hot_wallet(devnet, chain)
    sweeper_ready(devnet, chain)
    policy(devnet, max_batch_size=4)
    usdt = Token.objects.get(network=devnet, currency="usdt")
    charges = paid_intents(api, devnet, chain, 24)
    total = sum(c.transfer.amount_base_units for c in charges)
    first_block = int(rpc(chain.rpc_url, "eth_blockNumber"), 16)
    hot_before = token_balance(chain, usdt.contract_address, hot.address)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings.test", "DATABASE_URL": _database_url(),
           devnet.rpc_env: chain.rpc_url, "CELERY_BROKER_URL": "memory://", "PYTHONUNBUFFERED": "1"}
    forker = Forker(env, tmp_path)
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    try:
        # Given the three loops, one of them killed -9 at a random moment each round, blocks mined now and then
        running = {name: forker.start("call", path) for name, path in LOOPS.items()}
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.05, 0.5))
            victim = rng.choice(sorted(running))
            forker.kill(running[victim])
            running[victim] = forker.start("call", LOOPS[victim])
            if rng.random() < 0.6:
                rpc(chain.rpc_url, "anvil_mine", [hex(rng.randint(1, 3))])
        for pid in running.values():
            forker.kill(pid)
    finally:
        forker.close()
        rpc(chain.rpc_url, "evm_setAutomine", [True])
    killed_runs = (Sweep.objects.count(), OutgoingAttempt.objects.count())

    # When a last run, not killed, finishes the work
    for _ in range(20):
        drive(devnet, chain)
        summary = sweeps.sweeps_run(network=devnet, client=client_for(devnet))
        if not summary.sent and not Sweep.objects.filter(status="sent").exists():
            break
    else:
        raise AssertionError("sweeps still open")

    # Then every deposit was swept once, into the hot wallet, and the ledger equals the chain
    assert killed_runs[0] > 0 and killed_runs[1] > 0  # the killed runs did work
    assert [token_balance(chain, usdt.contract_address, c.transfer.deposit_address.address)
            for c in charges] == [0] * 24
    assert token_balance(chain, usdt.contract_address, hot.address) - hot_before == total
    items = SweepItem.objects.filter(sweep__status="settled")
    assert sorted(Counter(i.deposit_address_id for i in items).values()) == [1] * 24
    assert sum(i.swept_base_units for i in items) == total
    assert ledger(AccountKind.HOT_WALLET, devnet, usdt, hot.address) == total  # the chain's, since this test began
    assert ledger(AccountKind.IN_TRANSIT, devnet, usdt) == 0 and ledger(AccountKind.DEPOSITS, devnet, usdt) == 0
    assert ledger_problems() == []
    # no nonce used twice, nothing on chain that was not stored first
    txs = list(OutgoingTransaction.objects.filter(from_address=hot.address).order_by("nonce"))
    assert [tx.nonce for tx in txs] == list(range(txs[0].nonce, txs[0].nonce + len(txs)))
    assert SendingAddress.objects.get(pk=hot.pk).next_nonce == txs[-1].nonce + 1
    stored = set(OutgoingAttempt.objects.values_list("tx_hash", flat=True))
    onchain = chain_transactions_from(chain, hot.address, first_block)
    assert all(t["hash"] in stored for t in onchain)
    assert not [n for n, c in Counter(int(t["nonce"], 16) for t in onchain).items() if c > 1]
    assert all(tx.status == "final" for tx in txs)
