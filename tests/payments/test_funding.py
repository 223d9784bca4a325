"""How recorded on-chain transfers move intents: the facts are written as the chain watcher writes them, then
the payments side applies them. (The end-to-end path through a real chain is in test_chain_payments.py.)"""
import itertools
from fractions import Fraction

import pytest
from django.utils import timezone

from payments import funding
from payments.models import Charge, Event, PaymentIntent, UnmatchedDeposit
from payments.services import PaymentIntentInput, payment_intent_cancel, payment_intent_create
from wallets.models import AddressActivity, Network, Token, Transfer

pytestmark = pytest.mark.usefixtures("ready")
_tx = itertools.count(1)


@pytest.fixture
def intent(merchant):
    return payment_intent_create(merchant=merchant, livemode=False,
                                 data=PaymentIntentInput(amount=1234, currency="usd", networks=["bsc"]))


def bsc():
    return Network.objects.get(api_name="bsc", livemode=False, is_active=True)


def usdt():
    return Token.objects.get(network=bsc(), currency="usdt")


def pay(intent, amount, *, token=None, network=None, final=False, block=100):
    """Record a transfer to the intent's address, as the scanner does, and queue the address."""
    network = network or bsc()
    t = Transfer.objects.create(
        network=network, token=token if token is not None else usdt(), tx_hash=f"0x{next(_tx):064x}", log_index=0,
        block_number=block, block_hash=f"0x{block:064x}", from_address="0x" + "b" * 40,
        to_address=intent.deposit_address.address, deposit_address=intent.deposit_address, amount_base_units=amount,
        finalized_at=timezone.now() if final else None,
    )
    AddressActivity.objects.create(deposit_address=intent.deposit_address)
    return t


def finalize(transfer):
    Transfer.objects.filter(pk=transfer.pk).update(finalized_at=timezone.now())
    AddressActivity.objects.create(deposit_address_id=transfer.deposit_address_id)


def orphan(transfer):
    Transfer.objects.filter(pk=transfer.pk).update(orphaned_at=timezone.now())
    AddressActivity.objects.create(deposit_address_id=transfer.deposit_address_id)


def apply():
    funding.address_activity_process()
    assert not AddressActivity.objects.exists()


def types(intent):
    return list(Event.objects.filter(object_id=intent.id).order_by("sequence").values_list("type", flat=True))[2:]


DUE = 12_340_000_000_000_000_000


def test_exact_payment_is_processing_when_seen_and_succeeded_when_final(intent):
    t = pay(intent, DUE)
    apply()
    intent.refresh_from_db()
    assert intent.status == "processing" and intent.amount_received == 0

    finalize(t)
    apply()
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 1234
    charge = Charge.objects.get()
    assert charge.amount == 1234 and charge.payment_intent == intent and intent.latest_charge == charge
    assert types(intent) == ["payment_intent.processing", "payment_intent.succeeded"]
    assert Event.objects.filter(type="charge.succeeded", object_id=charge.id).count() == 1


def test_applying_twice_changes_nothing(intent):
    t = pay(intent, DUE, final=True)
    apply()
    before = (Event.objects.count(), Charge.objects.count())
    finalize(t)  # the same fact announced again
    apply()
    assert (Event.objects.count(), Charge.objects.count()) == before


def test_short_payment_waits_with_partially_funded_then_second_part_completes(intent):
    pay(intent, DUE // 2, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "requires_action" and intent.amount_received == 617
    assert types(intent) == ["payment_intent.partially_funded"]

    pay(intent, DUE - DUE // 2, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 1234
    assert Charge.objects.count() == 2


def test_underpayment_within_the_merchants_tolerance_succeeds(intent, merchant):
    merchant.underpayment_tolerance_bps = 100  # 1 %
    merchant.save()
    pay(intent, DUE * 99 // 100, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 1221


def test_overpayment_succeeds_and_records_the_excess(intent):
    pay(intent, DUE * 2, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 2468 and intent.amount == 1234


def test_wrong_token_is_an_unmatched_deposit_against_the_intent(intent):
    other = Token.objects.create(network=bsc(), currency="dai", contract_address="0x" + "d" * 40, decimals=18)
    t = pay(intent, DUE, token=other, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "requires_action" and intent.amount_received == 0
    deposit = UnmatchedDeposit.objects.get(transfer=t)
    assert deposit.reason == "unsupported_token" and deposit.payment_intent == intent
    assert Event.objects.filter(type="crypto.deposit.unmatched", object_id=deposit.id).count() == 1


def test_funds_after_cancellation_are_recorded_not_credited(intent):
    payment_intent_cancel(intent=intent, reason="abandoned")
    t = pay(intent, DUE, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "canceled" and intent.amount_received == 0
    assert UnmatchedDeposit.objects.get(transfer=t).reason == "intent_closed"
    assert not Charge.objects.exists()


@pytest.mark.parametrize("accept, status", [(True, "succeeded"), (False, "canceled")])
def test_a_fully_funded_late_payment_succeeds_only_if_the_merchant_accepts_late_payments(intent, merchant, accept, status):
    from payments.services import payment_intent_expire

    merchant.accept_late_payments = accept
    merchant.save()
    PaymentIntent.objects.filter(pk=intent.pk).update(expires_at=timezone.now())
    payment_intent_expire(intent_id=intent.pk)
    pay(intent, DUE, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == status
    assert intent.amount_received == (1234 if accept else 0)


def test_a_reorg_that_removes_the_payment_moves_the_intent_back(intent):
    t = pay(intent, DUE)
    apply()
    orphan(t)
    apply()
    intent.refresh_from_db()
    assert intent.status == "requires_action"
    assert types(intent) == ["payment_intent.processing", "payment_intent.reversed"]
    assert Transfer.objects.filter(pk=t.pk).exists()  # never deleted

    replacement = pay(intent, DUE, block=101)
    finalize(replacement)
    apply()
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 1234
    assert Charge.objects.count() == 1


def test_transfer_to_an_address_with_no_intent_is_unmatched(merchant):
    from wallets.services import deposit_address_allocate

    address = deposit_address_allocate(merchant=merchant)
    t = Transfer.objects.create(
        network=bsc(), token=usdt(), tx_hash="0x" + "e" * 64, log_index=3, block_number=5, block_hash="0x" + "5" * 64,
        from_address="0x" + "b" * 40, to_address=address.address, deposit_address=address, amount_base_units=7,
        finalized_at=timezone.now(),
    )
    AddressActivity.objects.create(deposit_address=address)
    apply()
    deposit = UnmatchedDeposit.objects.get(transfer=t)
    assert deposit.reason == "no_open_intent" and deposit.payment_intent is None and deposit.merchant == merchant


def _expire(intent):
    from payments.services import payment_intent_expire

    PaymentIntent.objects.filter(pk=intent.pk).update(expires_at=timezone.now())
    assert payment_intent_expire(intent_id=intent.pk) is not None


@pytest.mark.parametrize("accept", [True, False])
def test_a_transfer_credited_before_the_intent_expired_is_not_also_an_unmatched_deposit(intent, merchant, accept):
    merchant.accept_late_payments = accept
    merchant.save()
    early = pay(intent, DUE // 2, final=True)
    apply()
    _expire(intent)
    late = pay(intent, DUE // 4, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "canceled" and intent.amount_received == 617
    assert list(Charge.objects.values_list("transfer_id", flat=True)) == [early.id]
    assert list(UnmatchedDeposit.objects.values_list("transfer_id", "reason")) == [(late.id, "intent_closed")]


def test_a_late_part_announced_as_unmatched_is_never_credited_afterwards(intent, merchant):
    merchant.accept_late_payments = True
    merchant.save()
    _expire(intent)
    first = pay(intent, DUE // 2, final=True)
    apply()
    assert UnmatchedDeposit.objects.get().transfer == first
    second = pay(intent, DUE - DUE // 2, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "canceled" and intent.amount_received == 0 and not Charge.objects.exists()
    assert sorted(UnmatchedDeposit.objects.values_list("transfer_id", flat=True)) == sorted([first.id, second.id])
    assert Event.objects.filter(type="crypto.deposit.unmatched").count() == 2


def test_dust_counts_but_makes_no_charge(intent):
    # Given a transfer worth less than one cent (0.001 USDT), final
    pay(intent, 10**15, final=True)
    apply()
    intent.refresh_from_db()
    # Then no Charge of 0 (and no charge.succeeded) that a merchant could take for a payment
    assert not Charge.objects.exists() and not Event.objects.filter(type="charge.succeeded").exists()
    assert intent.latest_charge is None and intent.amount_received == 0 and intent.status == "requires_action"
    # and it still counts exactly towards what the intent needs
    pay(intent, DUE - 10**15, final=True)
    apply()
    intent.refresh_from_db()
    assert intent.status == "succeeded" and intent.amount_received == 1234
    # and the dust is in the one Charge: the intent's Charges add up to what it received
    assert list(Charge.objects.values_list("amount", flat=True)) == [1234]


def test_the_charges_of_an_intent_add_up_to_its_amount_received(intent):
    # Given two final transfers worth 5.005 USD each (each alone rounds down to 500 cents)
    first = pay(intent, 5_005 * 10**15, final=True, block=100)
    second = pay(intent, 5_005 * 10**15, final=True, block=101)
    apply()
    intent.refresh_from_db()
    # Then the second Charge carries the cent the two make together
    charges = dict(Charge.objects.values_list("transfer_id", "amount"))
    assert charges == {first.id: 500, second.id: 501}
    assert intent.amount_received == 1001 == sum(charges.values()) and intent.status == "requires_action"
    # and applying again changes nothing
    AddressActivity.objects.create(deposit_address=intent.deposit_address)
    apply()
    assert dict(Charge.objects.values_list("transfer_id", "amount")) == charges


@pytest.mark.parametrize("cents_per_transfer", [Fraction(6, 10), Fraction(55, 10)])
def test_charges_add_up_whatever_the_order_in_which_transfers_become_final(merchant, cents_per_transfer):
    # Given an intent payable on two chains, whose block numbers have nothing to do with each other
    intent = payment_intent_create(merchant=merchant, livemode=False, data=PaymentIntentInput(
        amount=1234, currency="usd", networks=["bsc", "polygon"]))
    polygon = Network.objects.get(api_name="polygon", livemode=False, is_active=True)
    polygon_token = Token.objects.filter(network=polygon, is_active=True).order_by("currency").first()

    def worth(token):
        return int(cents_per_transfer * 10**token.decimals / 100)

    # When two transfers at high block numbers become final first, then one at a low block number
    pay(intent, worth(polygon_token), token=polygon_token, network=polygon, final=True, block=50_000_000)
    pay(intent, worth(polygon_token), token=polygon_token, network=polygon, final=True, block=50_000_001)
    apply()
    pay(intent, worth(usdt()), final=True, block=100)
    apply()
    intent.refresh_from_db()
    # Then the Charges still add up to what the intent received (the floor of 3 x the worth)
    amounts = list(Charge.objects.filter(payment_intent=intent).values_list("amount", flat=True))
    assert sum(amounts) == intent.amount_received == int(3 * cents_per_transfer)


def test_a_reorg_that_removes_part_of_a_short_payment_is_announced(intent):
    # Given a short payment announced as partially funded, not final yet
    t = pay(intent, DUE // 2)
    apply()
    assert types(intent) == ["payment_intent.partially_funded"]
    # When a reorg removes it
    orphan(t)
    apply()
    intent.refresh_from_db()
    # Then the intent still waits, and the merchant hears that the funds it was told of are gone (once)
    assert intent.status == "requires_action" and intent.amount_seen == 0
    assert types(intent) == ["payment_intent.partially_funded", "payment_intent.reversed"]
    AddressActivity.objects.create(deposit_address=intent.deposit_address)
    apply()
    assert types(intent) == ["payment_intent.partially_funded", "payment_intent.reversed"]


def test_a_charge_of_a_canceled_intent_is_reversed_when_its_block_is_orphaned(intent):
    early = pay(intent, DUE // 2, final=True)
    apply()
    _expire(intent)
    orphan(early)
    apply()
    intent.refresh_from_db()
    charge = Charge.objects.get()
    assert charge.status == "reversed" and intent.amount_received == 0 and intent.status == "canceled"
    assert Event.objects.filter(type="charge.reversed", object_id=charge.id).count() == 1


def test_a_restored_transfer_is_not_announced_as_unmatched_twice(merchant):
    from wallets.services import deposit_address_allocate

    address = deposit_address_allocate(merchant=merchant)
    first = Transfer.objects.create(
        network=bsc(), token=usdt(), tx_hash="0x" + "e" * 64, log_index=0, block_number=5, block_hash="0x" + "f" * 64,
        from_address="0x" + "b" * 40, to_address=address.address, deposit_address=address, amount_base_units=7,
        finalized_at=timezone.now(),
    )
    AddressActivity.objects.create(deposit_address=address)
    apply()
    orphan(first)
    apply()
    # the block comes back: the same on-chain transfer, a new live row
    Transfer.objects.create(**{f.attname: getattr(first, f.attname) for f in Transfer._meta.concrete_fields
                               if f.attname not in ("id", "orphaned_at")})
    AddressActivity.objects.create(deposit_address=address)
    apply()
    assert UnmatchedDeposit.objects.count() == 1
    assert Event.objects.filter(type="crypto.deposit.unmatched").count() == 1


def test_expiry_waits_until_the_chain_is_scanned_past_the_deadline(intent):
    from datetime import timedelta

    from payments.tasks import expire_payment_intents
    from wallets.models import ChainCursor

    # Given an intent past its deadline, and a scanner that last stepped before it (an RPC outage)
    PaymentIntent.objects.filter(pk=intent.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    cursor = ChainCursor.objects.create(network=bsc(), block_number=10, block_hash="0x" + "1" * 64, head_number=10)
    ChainCursor.objects.filter(pk=cursor.pk).update(updated=timezone.now() - timedelta(minutes=5))
    assert expire_payment_intents() == 0
    intent.refresh_from_db()
    assert intent.status == "requires_action"

    # When the scanner catches up after the deadline, then the intent expires
    cursor.save()  # updated = now, head == cursor
    assert expire_payment_intents() == 1
    intent.refresh_from_db()
    assert intent.status == "canceled"


def test_expiry_applies_what_was_recorded_first(intent):
    from datetime import timedelta

    from payments.tasks import expire_payment_intents

    # Given a payment recorded before the deadline whose queue row has not been applied yet
    pay(intent, DUE, final=True)
    PaymentIntent.objects.filter(pk=intent.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # When the expiry runs, the payment is applied, and the intent does not expire
    assert expire_payment_intents() == 0
    intent.refresh_from_db()
    assert intent.status == "succeeded" and not UnmatchedDeposit.objects.exists()
