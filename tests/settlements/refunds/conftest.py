"""Fixtures of the refund tests: a merchant with a paid Charge credited to its available balance (the ledger
posted it), and helpers that read what a refund changed."""
import pytest

from payments.models import Event
from settlements.models import JournalTransaction, LedgerEntry
from settlements.refunds.models import Refund
from settlements.services import ledger_post_charge_facts
from tests.settlements.conftest import ONE_USDT, paid_charge

CUSTOMER = "0x" + "c0" * 20  # all lower case: no checksum to check
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's own example


def credited_charge(merchant, amount_base_units: int = 10 * ONE_USDT, **kwargs):
    """A $10 Charge of `amount_base_units` USDT, posted to the ledger (available at once: no holding period)."""
    charge = paid_charge(merchant, amount_base_units, **kwargs)
    ledger_post_charge_facts()
    return charge


def written() -> tuple:
    """What a refusal must leave as it was: refunds, events, journal transactions and entries."""
    return (Refund.objects.count(), Event.objects.count(), JournalTransaction.objects.count(),
            LedgerEntry.objects.count())


@pytest.fixture
def charge(ledger_ready, merchant):
    return credited_charge(merchant)


def unmatched_deposit(merchant, amount_base_units: int = 3 * ONE_USDT):
    """A payment to an intent the merchant canceled: recorded as an unmatched deposit (never credited)."""
    from django.utils import timezone

    from payments import funding
    from payments.models import UnmatchedDeposit
    from payments.services import payment_intent_cancel
    from tests.settlements.conftest import bsc, intent_for, token
    from wallets.models import AddressActivity, Transfer

    intent = payment_intent_cancel(intent=intent_for(merchant))
    transfer = Transfer.objects.create(
        network=bsc(), token=token(), tx_hash="0x" + "de" * 32, log_index=7, block_number=100,
        block_hash="0x" + "1" * 64, from_address="0x" + "b" * 40, to_address=intent.deposit_address.address,
        deposit_address=intent.deposit_address, amount_base_units=amount_base_units, finalized_at=timezone.now(),
    )
    AddressActivity.objects.create(deposit_address=intent.deposit_address)
    funding.address_activity_process()
    return UnmatchedDeposit.objects.get(transfer=transfer)
