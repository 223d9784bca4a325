"""Properties of the ledger under thousands of random operations: credits (through payments' queue), reversals,
fee schedules and holding periods changing between them, releases, and sweeps with their gas (posted as
settlements.sweeps and the hot/cold task post them: sent, settled for what moved, reversed for the rest). After each run every journal transaction balances (checked by the database itself and by
`ledger check`), every running balance equals its entries, and every balance equals an independent model."""
import itertools
import random
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments.ledger_outbox import charge_ledger_fact_record
from payments.models import Charge
from settlements.fees import fee_split
from settlements.models import AccountKind, JournalTransaction, LedgerBalance
from settlements.selectors import ledger_problems
from settlements.services import (Posting, journal_transaction_post, ledger_account_get, ledger_post_charge_facts,
                                  ledger_release_matured)
from tests.merchants.factories import MerchantFactory
from wallets.models import Transfer

from .conftest import bsc, fees, hold, intent_for, token

pytestmark = pytest.mark.usefixtures("ledger_ready")
OPERATIONS = 400  # a run; hypothesis makes 5 runs: 2000 operations
_n = itertools.count(1)


@given(amount=st.integers(0, 10**40), bps=st.integers(0, 10_000), fixed=st.integers(0, 10**30))
@settings(max_examples=2000, deadline=None, database=None)
def test_the_fee_rounding_rule_never_creates_or_destroys_a_base_unit(amount, bps, fixed):
    fee, net = fee_split(amount=amount, fee_bps=bps, fee_fixed=fixed)
    assert fee + net == amount and 0 <= fee <= amount and net >= 0
    assert fee == min(amount * bps // 10_000 + fixed, amount)
    if amount * bps // 10_000 + fixed <= amount:  # the percentage rounds down: in the merchant's favour
        assert fee * 10_000 <= amount * bps + fixed * 10_000 < (fee + 1) * 10_000


@pytest.mark.parametrize("bad", [dict(amount=-1, fee_bps=0, fee_fixed=0), dict(amount=1, fee_bps=10_001, fee_fixed=0),
                                 dict(amount=1, fee_bps=0, fee_fixed=-1)])
def test_fee_split_refuses_out_of_range_input(bad):
    with pytest.raises(ValueError):
        fee_split(**bad)


class Model:
    """What the balances must be, computed without the ledger."""

    def __init__(self):
        self.owed = Counter()  # (merchant id, token id, "pending"|"available") -> base units owed
        self.asset = Counter()  # (kind, token id or None) -> balance, debit positive
        self.fees: dict[tuple[str, int], tuple[int, int]] = {}
        self.hold: dict[str, int] = {}
        self.queue: list[tuple[str, Charge]] = []
        self.posted: dict[str, tuple[int, int, str]] = {}  # charge id -> (fee, net, where the net is)

    def consume(self):
        for kind, charge in self.queue:
            m, t, amount = charge.merchant_id, charge.transfer.token_id, charge.transfer.amount_base_units
            if kind == "credit":
                fee, net = fee_split(amount=amount, fee_bps=self.fees.get((m, t), (0, 0))[0],
                                     fee_fixed=self.fees.get((m, t), (0, 0))[1])
                where = "pending" if self.hold.get(m) else "available"
                self.posted[charge.id] = (fee, net, where)
                self.asset["deposits", t] += amount
                self.asset["fee_revenue", t] -= fee
                self.owed[m, t, where] += net
            else:
                fee, net, where = self.posted.pop(charge.id)
                self.asset["deposits", t] -= amount
                self.asset["fee_revenue", t] += fee
                self.owed[m, t, where] -= net
        self.queue = []

    def release(self, charges):
        for charge_id, (fee, net, where) in list(self.posted.items()):
            if where == "pending":
                charge = charges[charge_id]
                key = (charge.merchant_id, charge.transfer.token_id)
                self.owed[(*key, "pending")] -= net
                self.owed[(*key, "available")] += net
                self.posted[charge_id] = (fee, net, "available")


def account(kind, *, token_=None, merchant_id=None, address=""):
    return ledger_account_get(kind=kind, network_id=bsc().id, token_id=token_.id if token_ else None,
                              merchant_id=merchant_id, address=address, livemode=False)


def operator_balances() -> Counter:
    return Counter({(b.account.kind, b.account.token_id): b.balance
                    for b in LedgerBalance.objects.filter(account__merchant__isnull=True).select_related("account")})


def run_operations(rng: random.Random, merchants, intents, tokens):
    model = Model()
    model.asset = operator_balances()  # the books are not emptied between runs: the model starts where they are
    charges: dict[str, Charge] = {}
    live: list[Charge] = []  # credited, not reversed
    hot = "0x" + "40" * 20
    network = bsc()
    for _ in range(OPERATIONS):
        op = rng.choices(["credit", "reverse", "fees", "hold", "consume", "release", "sweep"],
                         weights=[40, 8, 4, 3, 15, 5, 6])[0]
        merchant = rng.choice(merchants)
        token_ = rng.choice(tokens)
        if op == "credit":
            intent = intents[merchant.id]
            amount = rng.choice([rng.randint(1, 10**6), rng.randint(1, 10**24), 10**rng.randint(0, 30)])
            transfer = Transfer.objects.create(
                network=network, token=token_, tx_hash=f"0x{next(_n):064x}", log_index=0, block_number=1,
                block_hash="0x" + "1" * 64, from_address="0x" + "b" * 40, to_address=intent.deposit_address.address,
                deposit_address=intent.deposit_address, amount_base_units=amount, finalized_at=timezone.now())
            with transaction.atomic():  # as payments does: the fact queued in the Charge's transaction
                charge = Charge.objects.create(merchant=merchant, livemode=False, payment_intent=intent,
                                               transfer=transfer, amount=1, currency="usd")
                charge_ledger_fact_record(charge=charge, kind="credit")
            charges[charge.id] = charge
            live.append(charge)
            model.queue.append(("credit", charge))
        elif op == "reverse" and live:
            charge = live.pop(rng.randrange(len(live)))
            with transaction.atomic():
                Charge.objects.filter(pk=charge.pk).update(status=Charge.Status.REVERSED)
                charge_ledger_fact_record(charge=charge, kind="reversal")
            model.queue.append(("reversal", charge))
        elif op == "fees":
            bps, fixed = rng.choice([0, 1, 99, 250, 10_000]), rng.choice([0, 1, 10**6, 10**18])
            fees(merchant, bps=bps, fixed=fixed, currency=token_.currency)
            model.fees[merchant.id, token_.id] = (bps, fixed)
        elif op == "hold":
            seconds = rng.choice([0, 3600])
            hold(merchant, seconds)
            model.hold[merchant.id] = seconds
        elif op == "consume":
            ledger_post_charge_facts()
            model.consume()
        elif op == "release":
            ledger_post_charge_facts()
            model.consume()
            ledger_release_matured(now=timezone.now() + timedelta(hours=2))
            model.release(charges)
        elif op == "sweep" and model.asset["deposits", token_.id] > 0:
            amount = rng.randint(1, model.asset["deposits", token_.id])
            gas = rng.randint(1, 10**15)
            n = next(_n)
            moved = rng.randint(0, amount)  # what the final receipt moved (a skipped deposit moves nothing)
            kinds = JournalTransaction.Kind
            # as settlements.sweeps posts a sweep: sent (in transit), then settled and the rest reversed; its gas
            # as the hot/cold task posts every hot wallet transaction's
            journal_transaction_post(kind=kinds.SWEEP_SEND, source_type="sweep", source_id=str(n), postings=[
                Posting(account(AccountKind.IN_TRANSIT, token_=token_), amount),
                Posting(account(AccountKind.DEPOSITS, token_=token_), -amount)])
            if moved:
                journal_transaction_post(kind=kinds.SWEEP_SETTLE, source_type="sweep", source_id=str(n), postings=[
                    Posting(account(AccountKind.HOT_WALLET, token_=token_, address=hot), moved),
                    Posting(account(AccountKind.IN_TRANSIT, token_=token_), -moved)])
            if amount - moved:
                journal_transaction_post(kind=kinds.SWEEP_REVERSAL, source_type="sweep", source_id=str(n), postings=[
                    Posting(account(AccountKind.DEPOSITS, token_=token_), amount - moved),
                    Posting(account(AccountKind.IN_TRANSIT, token_=token_), -(amount - moved))])
            journal_transaction_post(kind=kinds.GAS_SPENT, source_type="outgoing_tx", source_id=str(n), postings=[
                Posting(account(AccountKind.GAS_SPENT), gas),
                Posting(account(AccountKind.HOT_WALLET, address=hot), -gas)])
            amount = moved
            model.asset["deposits", token_.id] -= amount
            model.asset["hot_wallet", token_.id] += amount
            model.asset["gas_spent", None] += gas
            model.asset["hot_wallet", None] -= gas
    ledger_post_charge_facts()
    model.consume()
    return model


def assert_books_match(model: Model, merchants, tokens):
    assert ledger_problems() == []
    running = {}
    for b in LedgerBalance.objects.select_related("account"):
        a = b.account
        running[a.kind, a.merchant_id, a.token_id] = b.balance
    for m in merchants:
        for t in tokens:
            for where, kind in (("pending", AccountKind.MERCHANT_PENDING),
                                ("available", AccountKind.MERCHANT_AVAILABLE)):
                assert -running.get((kind, m.id, t.id), 0) == model.owed[m.id, t.id, where], (m.id, t.currency, where)
    for (kind, token_id), expected in model.asset.items():
        assert running.get((kind, None, token_id), 0) == expected, (kind, token_id)
    by_asset = Counter()
    for (kind, merchant_id, token_id), value in running.items():
        by_asset[token_id] += value
    assert set(by_asset.values()) <= {0}  # every asset's accounts sum to zero


@pytest.fixture
def quick_commits(transactional_db):
    """Commits that do not wait for the WAL to reach the disk (durability is not what this test is about; the
    COMMIT-time checks run all the same): about a quarter off the runtime on a busy machine."""
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET synchronous_commit")


@given(rng=st.randoms(use_true_random=False))
@settings(max_examples=5, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_random_operations_keep_the_books_balanced_and_equal_to_their_entries(transactional_db, ledger_ready,
                                                                             quick_commits, rng):
    # Every posting commits, as in production, so the database's COMMIT-time balance check runs on each of them.
    merchants = [MerchantFactory() for _ in range(3)]  # new merchants each run; the operator's accounts carry on
    intents = {m.id: intent_for(m) for m in merchants}
    tokens = [token("usdt"), token("usdc")]
    model = run_operations(rng, merchants, intents, tokens)
    assert_books_match(model, merchants, tokens)
