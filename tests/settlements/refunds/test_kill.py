"""The refund worker (send, sign, broadcast, follow, settle: all of a refund's steps) killed with SIGKILL at random
moments, 30 times, while refunds keep coming. Each run is a child forked from this warm process, killed -9 after a
random 0.05-0.8 s. Then a last run in this process finishes the work, and: every refund succeeded with exactly one
outgoing transaction, every ledger step was posted once, the customer got on chain exactly what the refunds say
(nothing paid twice, nothing lost), and the ledger balances."""
import os
import random
import signal
import time

import pytest
from django.db.models import Count, Sum

from settlements.models import JournalTransaction
from settlements.refunds import services as refunds
from settlements.refunds.models import Refund
from settlements.selectors import ledger_balances, ledger_problems
from settlements.services import ledger_post_charge_facts
from tests.processes import child_exit_code, fork_child
from tests.settlements.conftest import paid_charge
from wallets.devchain import rpc
from wallets.outgoing import services as outgoing
from wallets.signer import step as signer_step
from wallets.outgoing.models import OutgoingTransaction

from .test_chain_refunds import ONE, chain_env, hot_wallet, run_manager, token_balance  # noqa: F401 (fixture)

pytestmark = [pytest.mark.usefixtures("ledger_ready"), pytest.mark.timeout(600)]
KILLS = 30
RECIPIENT = "0x" + "c7" * 20


def refund(merchant, rng):
    charge = paid_charge(merchant, 10 * ONE)
    ledger_post_charge_facts()
    return refunds.refund_create(merchant=merchant, livemode=False, charge=charge, amount=rng.randint(1, 1000),
                                 destination_address=RECIPIENT)


def test_the_refund_worker_killed_at_random_moments_never_pays_twice_nor_loses_a_refund(
        merchant, chain_env, anvil_chain, tmp_path):
    devnet, chain = chain_env, anvil_chain
    rng = random.Random(int(os.environ.get("CRASH_TEST_SEED", "20261203")))
    _hot, client = hot_wallet(devnet, chain, tokens=500 * ONE)
    token = devnet.tokens.get(currency="usdt")
    before = token_balance(chain, token, RECIPIENT)
    made = [refund(merchant, rng) for _ in range(8)]

    def work_forever():
        while True:
            refunds.refunds_advance(client_for=lambda network: client)
            while signer_step.outgoing_transaction_sign_next() is not None:
                pass
            outgoing.outgoing_transactions_process(network=devnet, client=client)
            rpc(chain.rpc_url, "anvil_mine", ["0x1"])

    for i in range(KILLS):
        pid = fork_child(work_forever, log=tmp_path / f"child-{i}.log")
        time.sleep(rng.uniform(0.05, 0.8))
        os.kill(pid, signal.SIGKILL)
        assert child_exit_code(pid, timeout=30) == -signal.SIGKILL, (tmp_path / f"child-{i}.log").read_text() \
            if (tmp_path / f"child-{i}.log").exists() else "the child exited by itself"
        if rng.random() < 0.3:
            made.append(refund(merchant, rng))

    # the killed workers did real work meanwhile (not everything is left for the last run)
    assert OutgoingTransaction.objects.filter(purpose="refund").exists()
    # the last run finishes the work
    for _ in range(10):
        refunds.refunds_advance(client_for=lambda network: client)
        run_manager(devnet, client, chain, rounds=3)
        if not Refund.objects.exclude(status="succeeded").exists():
            break
    refunds.refunds_advance(client_for=lambda network: client)

    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}
    assert Refund.objects.count() == len(made)
    assert OutgoingTransaction.objects.filter(purpose="refund").count() == len(made)
    assert set(OutgoingTransaction.objects.values_list("status", flat=True)) == {"final"}
    posted = (JournalTransaction.objects.filter(source_type="refund").values("source_id", "kind")
              .annotate(n=Count("id")))
    assert {(p["kind"], p["n"]) for p in posted} == {("refund_reserve", 1), ("refund_send", 1), ("refund_settle", 1)}
    assert len(posted) == 3 * len(made)
    sent = int(Refund.objects.aggregate(s=Sum("amount_base_units"))["s"])
    assert token_balance(chain, token, RECIPIENT) - before == sent
    [mine] = ledger_balances(merchant=merchant, livemode=False)
    assert (mine.available, mine.reserved) == (10 * ONE * len(made) - sent, 0)
    assert ledger_problems() == []
