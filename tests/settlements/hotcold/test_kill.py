"""Cold transfers under SIGKILL: the hot/cold task, the signer and the sender, each in its own process forked from a
warm Django process, killed -9 at random moments (45 kills) while tokens keep arriving at the hot wallet (recorded
top-ups) and fees get bumped (blocks only when the test mines them, a pending transaction replaced at once). Then a
last run, not killed, finishes the work, and: every nonce used once, every transaction on chain from the hot wallet
was stored first, every cold transfer completed once, the ledger balances and equals the chain to the base unit
(hot wallet: native and token; cold address), and reconciliation finds no difference."""
import os
import random
import time
from collections import Counter

import pytest
from eth_abi import encode as abi_encode

from settlements.hotcold.models import ColdTransfer
from settlements.hotcold.reconcile import wallets_reconcile
from settlements.hotcold.services import hot_cold_run, outgoing_gas_post
from settlements.models import AccountKind
from settlements.selectors import ledger_problems
from tests.wallets.outgoing.conftest import sign_all, wait_for
from tests.wallets.outgoing.test_kill import chain_transactions_from, forker  # noqa: F401 (fixture)
from wallets.devchain import rpc
from wallets.outgoing import services as outgoing
from wallets.outgoing.models import OutgoingAttempt, OutgoingTransaction

from .conftest import MINT, ONE, ledger, mine, native_balance, record_topup, token_balance

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROUNDS = 15  # three kills a round: the hot/cold task, the signer, the sender
ENDED = ("final", "failed", "cancelled")


def top_up(chain, network, client, usdt, hot, amount: int) -> None:
    data = MINT + abi_encode(["address", "uint256"], [hot.address, amount])
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [{"from": chain.accounts[0], "to": usdt.contract_address,
                                                          "data": "0x" + data.hex()}])
    mine(chain)
    record_topup(network, client, usdt, amount, tx_hash)


@pytest.mark.timeout(600)
def test_cold_transfers_with_every_process_killed_at_random_moments_stay_exact(chain, network, client, hot, usdt,
                                                                               setting, forker):
    rng = random.Random(int(os.environ.get("CRASH_TEST_SEED", "20261203")))
    first_block = int(rpc(chain.rpc_url, "eth_blockNumber"), 16)
    network.tx_replace_seconds = 0
    network.save(update_fields=["tx_replace_seconds"])
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    minted = 0
    for _ in range(ROUNDS):
        if rng.random() < 0.7:
            amount = rng.randint(1, 200) * ONE + rng.randint(0, 10**6)
            top_up(chain, network, client, usdt, hot, amount)
            minted += amount
        pids = [forker.start("call", "tests.settlements.hotcold.loop.hot_cold_forever"),
                forker.start("call", "tests.wallets.outgoing.loop.sign_forever"),
                forker.start("call", "tests.wallets.outgoing.loop.send_forever")]
        lives = sorted((rng.uniform(0.05, 0.8), pid) for pid in pids)
        slept = 0.0
        for life, pid in lives:
            time.sleep(life - slept)
            slept = life
            forker.kill(pid)
        if rng.random() < 0.6:
            mine(chain, rng.randint(1, 3))
    by_killed = ColdTransfer.objects.count()

    # A last run, not killed, finishes the work
    rpc(chain.rpc_url, "evm_setAutomine", [True])

    def settled():
        outgoing.outgoing_transactions_process(network=network, client=client)
        sign_all()
        hot_cold_run()
        if (OutgoingTransaction.objects.exclude(status__in=ENDED).exists()
                or ColdTransfer.objects.filter(status="sent").exists()):
            mine(chain)
            return False
        return True

    wait_for(settled, what="every cold transfer to end", timeout=240, interval=0.1)
    mine(chain, 3)
    outgoing_gas_post()

    colds = list(ColdTransfer.objects.select_related("outgoing_transaction"))
    assert by_killed > 0 and colds and all(c.status == "completed" for c in colds), Counter(c.status for c in colds)
    txs = list(OutgoingTransaction.objects.order_by("nonce"))
    assert [tx.nonce for tx in txs] == list(range(len(txs)))
    assert sorted(c.outgoing_transaction_id for c in colds) == [tx.id for tx in txs]  # one transaction a transfer
    stored = set(OutgoingAttempt.objects.values_list("tx_hash", flat=True))
    onchain = chain_transactions_from(chain, hot.address, first_block)
    assert len(onchain) == len(txs) and all(t["hash"] in stored for t in onchain)

    sent = sum(c.amount_base_units for c in colds)
    assert token_balance(chain, usdt, setting.cold_address) == sent
    assert ledger(AccountKind.COLD_WALLET, network, usdt, setting.cold_address) == sent
    assert token_balance(chain, usdt, hot.address) == ledger(AccountKind.HOT_WALLET, network, usdt, hot.address)
    assert ledger(AccountKind.HOT_WALLET, network, usdt, hot.address) == minted - sent <= setting.hot_ceiling_base_units
    assert ledger(AccountKind.IN_TRANSIT, network, usdt) == 0
    assert native_balance(chain, hot.address) == ledger(AccountKind.HOT_WALLET, network, None, hot.address)
    assert ledger_problems() == []
    summary = wallets_reconcile(network=network, client=client)
    assert (summary.status, summary.differences, summary.skipped) == ("reconciled", 0, [])
    print(f"\n{ROUNDS * 3} kills, {len(colds)} cold transfers ({by_killed} started by killed runs), "
          f"{OutgoingAttempt.objects.count()} attempts for {len(txs)} transactions")
