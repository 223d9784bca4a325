"""Expiry racing the payment that arrives at the deadline, with real threads (each its own PostgreSQL connection):
the scanner's step that records a final transfer (the Transfer, its queue row and the cursor, in one transaction,
as wallets.chain.scanner writes them), the expiry task and the payments task, started together with a little jitter,
20 times per case.

- In time: the scanner was behind at the deadline and the step that records the payment is the first to pass it.
  The payment was mined before the deadline, so the intent must succeed, whatever the order (expiry waits for a
  scan that ended after the deadline and must then see everything that scan recorded).
- Late: the chain was already scanned past the deadline when the payment is recorded. Either outcome is right:
  succeeded with a Charge (applied before expiry), or canceled with an `intent_closed` unmatched deposit for the
  merchant to refund.
Always: the money is either credited or unmatched, never neither, never both."""
import itertools
import random
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from payments import tasks
from payments.models import Charge, PaymentIntent, UnmatchedDeposit
from payments.services import PaymentIntentInput, payment_intent_create
from wallets.models import AddressActivity, ChainCursor, Network, Token, Transfer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ready"), pytest.mark.slow]

ITERATIONS = 20
_tx = itertools.count(1)


@pytest.fixture
def bsc():
    network = Network.objects.get(api_name="bsc", livemode=False, is_active=True)
    ChainCursor.objects.create(network=network, block_number=100, head_number=100, block_hash="0x" + "0" * 64)
    return network


def scanner_step(network: Network, intent: PaymentIntent) -> None:
    """What one scanner step commits for a final payment of the intent in full: transfer, queue row, cursor."""
    with transaction.atomic():
        cursor = ChainCursor.objects.select_for_update().get(network=network)
        block = cursor.block_number + 1
        Transfer.objects.create(
            network=network, token=Token.objects.get(network=network, currency="usdt"),
            tx_hash=f"0x{next(_tx):064x}", log_index=0, block_number=block, block_hash=f"0x{block:064x}",
            from_address="0x" + "b" * 40, to_address=intent.deposit_address.address,
            deposit_address=intent.deposit_address, amount_base_units=intent.amount * 10**16,  # 18 decimals
            finalized_at=timezone.now(),
        )
        AddressActivity.objects.create(deposit_address=intent.deposit_address)
        cursor.block_number = cursor.head_number = block
        cursor.save()


def race(*jobs) -> None:
    """Run the jobs in threads started together (each after a random 0-5 ms), re-raising the first failure."""
    barrier, errors = threading.Barrier(len(jobs)), []
    rng = random.Random()

    def run(job, delay):
        try:
            barrier.wait()
            threading.Event().wait(delay)
            job()
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job, rng.uniform(0, 0.005))) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a racing job hung"
    if errors:
        raise errors[0]


def outcome(intent: PaymentIntent) -> str:
    intent.refresh_from_db()
    transfer = Transfer.objects.get(deposit_address=intent.deposit_address)
    charges = list(Charge.objects.filter(transfer=transfer))
    unmatched = list(UnmatchedDeposit.objects.filter(transfer=transfer))
    assert len(charges) + len(unmatched) == 1, (intent.id, intent.status, charges, unmatched)  # never both/neither
    if intent.status == PaymentIntent.Status.SUCCEEDED:
        assert charges and charges[0].status == "succeeded" and charges[0].amount == intent.amount
        assert intent.amount_received == intent.amount
        return "succeeded"
    assert intent.status == PaymentIntent.Status.CANCELED and intent.cancellation_reason == "expired", intent.status
    assert unmatched and unmatched[0].reason == "intent_closed" and intent.amount_received == 0
    return "canceled"


def race_one(merchant, bsc, *, late: bool) -> str:
    intent = payment_intent_create(merchant=merchant, livemode=False,
                                   data=PaymentIntentInput(amount=1000, currency="usd", networks=["bsc"]))
    PaymentIntent.objects.filter(pk=intent.pk).update(expires_at=timezone.now() - timedelta(milliseconds=1))
    if late:  # a step after the deadline has already scanned the chain to its head
        ChainCursor.objects.get(network=bsc).save()
    race(lambda: scanner_step(bsc, intent), tasks.expire_payment_intents, tasks.process_address_activity)
    # what the scanner's message and the next beat runs do afterwards
    tasks.process_address_activity()
    tasks.expire_payment_intents()
    assert not AddressActivity.objects.exists()
    return outcome(intent)


def test_a_payment_recorded_by_the_first_scan_past_the_deadline_always_succeeds(merchant, bsc):
    outcomes = [race_one(merchant, bsc, late=False) for _ in range(ITERATIONS)]
    assert outcomes == ["succeeded"] * ITERATIONS, f"{outcomes.count('canceled')} of {ITERATIONS} turned into refunds"


def test_a_late_payment_racing_expiry_is_credited_or_unmatched_exactly_once(merchant, bsc):
    outcomes = [race_one(merchant, bsc, late=True) for _ in range(ITERATIONS)]
    assert set(outcomes) <= {"succeeded", "canceled"}
    print(f"\nlate payment vs expiry x{ITERATIONS}: {outcomes.count('succeeded')} succeeded, "
          f"{outcomes.count('canceled')} canceled with an unmatched deposit")
