"""The payouts' beat task, the signer and the sender, each in its own process, killed -9 at random moments (30 times
each) while payouts keep being created and blocks mined. Then a last run finishes the work, and: every payout was
paid by exactly one transaction, the recipient got exactly the sum of the payouts, the hot wallet on chain and in the
books lost exactly that, every payout posted its three journal transactions once, and the ledger checks."""
import os
import random
import time

import pytest

from settlements.models import AccountKind, JournalTransaction, LedgerAccount, LedgerBalance, Payout
from settlements.payouts import payout_create, payouts_advance
from settlements.selectors import ledger_problems
from tests.settlements.conftest import ONE_USDT, owed, token
from tests.settlements.payout_fixtures import RECIPIENT, funded, usable_address
from tests.settlements.test_payouts_chain import hot, run_chain  # noqa: F401 (fixture)
from tests.wallets.chain.test_scanner_crash import Forker
from tests.wallets.outgoing.conftest import wait_for
from tests.wallets.test_signer import _database_url
from wallets.devchain import erc20_balance_of, rpc
from wallets.outgoing.models import OutgoingTransaction

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ledger_ready"), pytest.mark.timeout(600)]
ROUNDS = 12  # three kills a round (the payout task, the signer, the sender): 36 in all
LOOPS = ("tests.settlements.payout_loop.advance_forever", "tests.wallets.outgoing.loop.sign_forever",
         "tests.wallets.outgoing.loop.send_forever")


@pytest.fixture
def forker(devnet, devnet_chain, tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings.test", "DATABASE_URL": _database_url(),
           devnet.rpc_env: devnet_chain.rpc_url, "CELERY_BROKER_URL": "memory://", "PYTHONUNBUFFERED": "1"}
    started = Forker(env, tmp_path)
    yield started
    started.close()


def test_payouts_with_every_worker_killed_at_random_pay_each_payout_exactly_once(merchant, devnet, devnet_chain, hot,
                                                                               forker):
    sending, client, fund = hot
    rng = random.Random(int(os.environ.get("CRASH_TEST_SEED", "20261203")))
    usdt = token()
    contract = devnet_chain.tokens["usdt"]
    funded(merchant, 100 * ONE_USDT)
    usable_address(merchant)
    fund(held=100 * ONE_USDT, booked=100 * ONE_USDT)
    recipient_before = erc20_balance_of(devnet_chain.rpc_url, contract, RECIPIENT)
    hot_before = erc20_balance_of(devnet_chain.rpc_url, contract, sending.address)

    def create():
        payout_create(merchant=merchant, token=usdt, amount=rng.randint(1, 150), currency="usd")

    for _ in range(5):
        create()
    for _ in range(ROUNDS):
        pids = [forker.start("call", loop) for loop in LOOPS]
        lives = sorted((rng.uniform(0.05, 0.8), pid) for pid in pids)
        lived = 0.0
        for life, pid in lives:
            time.sleep(life - lived)
            lived = life
            forker.kill(pid)
        for _ in range(rng.randint(0, 2)):
            create()
        if rng.random() < 0.5:
            rpc(devnet_chain.rpc_url, "anvil_mine", [hex(rng.randint(1, 3))])
    killed_in_transit = Payout.objects.exclude(status="pending").count()

    # a last run, not killed, finishes the work
    def all_paid():
        payouts_advance()
        run_chain(devnet, devnet_chain, client)
        payouts_advance()
        return not Payout.objects.exclude(status="paid").exists()

    wait_for(all_paid, what="every payout to be paid", timeout=240, interval=0.1)

    payouts = list(Payout.objects.all())
    total = sum(p.amount_base_units for p in payouts)
    assert killed_in_transit > 0
    assert OutgoingTransaction.objects.filter(purpose="payout").count() == len(payouts)
    assert all(p.outgoing_transaction.status == "final" for p in payouts)
    assert erc20_balance_of(devnet_chain.rpc_url, contract, RECIPIENT) - recipient_before == total
    assert hot_before - erc20_balance_of(devnet_chain.rpc_url, contract, sending.address) == total
    hot_account = LedgerAccount.objects.get(kind=AccountKind.HOT_WALLET, address=sending.address, token=usdt)
    assert LedgerBalance.objects.get(account=hot_account).balance == 100 * ONE_USDT - total
    for payout in payouts:
        assert sorted(JournalTransaction.objects.filter(source_type="payout", source_id=payout.id)
                      .values_list("kind", flat=True)) == ["payout_reserve", "payout_send", "payout_settle"]
    assert owed(merchant)["available"] == 100 * ONE_USDT - total
    assert ledger_problems() == []
    print(f"\n{ROUNDS * len(LOOPS)} kills, {len(payouts)} payouts, {total} base units paid")
