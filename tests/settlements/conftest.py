"""Fixtures of the ledger tests. Charges are made the way payments makes them: a final transfer to an intent's
address, applied by `payments.funding` (which queues the Charge fact), then posted by the ledger's consumer."""
import itertools

import pytest
from django.utils import timezone

from gateway.celery import app as celery_app

from payments import funding
from payments.models import Charge, PaymentIntent
from payments.services import PaymentIntentInput, payment_intent_create
from settlements.models import AccountKind, FeeSchedule, LedgerAccount, LedgerBalance, MerchantTerms
from tests.payments.conftest import devnet, devnet_chain, ready  # noqa: F401 (fixtures)
from tests.chain import anvil_chain  # noqa: F401 (fixture)
from wallets.models import AddressActivity, Network, Token, Transfer

_tx = itertools.count(1)
ONE_USDT = 10**18  # the test-mode bsc tokens have 18 decimals


def bsc() -> Network:
    return Network.objects.get(api_name="bsc", livemode=False, is_active=True)


def token(currency: str = "usdt") -> Token:
    return Token.objects.get(network=bsc(), currency=currency)


def intent_for(merchant, amount_minor: int = 1000) -> PaymentIntent:
    return payment_intent_create(merchant=merchant, livemode=False,
                                 data=PaymentIntentInput(amount=amount_minor, currency="usd", networks=["bsc"]))


def paid_charge(merchant, amount_base_units: int = 10 * ONE_USDT, *, intent=None) -> Charge:
    """A final transfer of `amount_base_units` USDT to a (new) intent of the merchant, applied: its Charge."""
    intent = intent or intent_for(merchant)
    transfer = Transfer.objects.create(
        network=bsc(), token=token(), tx_hash=f"0x{next(_tx):064x}", log_index=0, block_number=100,
        block_hash="0x" + "1" * 64, from_address="0x" + "b" * 40, to_address=intent.deposit_address.address,
        deposit_address=intent.deposit_address, amount_base_units=amount_base_units, finalized_at=timezone.now(),
    )
    AddressActivity.objects.create(deposit_address=intent.deposit_address)
    funding.address_activity_process()
    return Charge.objects.get(transfer=transfer)


def reverse(charge: Charge) -> None:
    """The chain dropped the charge's block: payments reverses the Charge (and queues the fact)."""
    Transfer.objects.filter(pk=charge.transfer_id).update(orphaned_at=timezone.now())
    AddressActivity.objects.create(deposit_address_id=charge.transfer.deposit_address_id)
    funding.address_activity_process()
    charge.refresh_from_db()
    assert charge.status == Charge.Status.REVERSED


def balance(kind: str, *, merchant=None, currency: str = "usdt") -> int:
    """The running balance of an account (0 when it does not exist), debit positive."""
    account = LedgerAccount.objects.filter(kind=kind, merchant=merchant, token=token(currency), address="").first()
    return LedgerBalance.objects.get(account=account).balance if account else 0


def owed(merchant, currency: str = "usdt") -> dict:
    return {"pending": -balance(AccountKind.MERCHANT_PENDING, merchant=merchant, currency=currency),
            "available": -balance(AccountKind.MERCHANT_AVAILABLE, merchant=merchant, currency=currency)}


def fees(merchant, *, bps: int = 0, fixed: int = 0, currency: str = "usdt") -> FeeSchedule:
    return FeeSchedule.objects.update_or_create(merchant=merchant, token=token(currency),
                                                defaults=dict(fee_bps=bps, fee_fixed_base_units=fixed))[0]


def hold(merchant, seconds: int) -> MerchantTerms:
    return MerchantTerms.objects.update_or_create(merchant=merchant, defaults=dict(hold_seconds=seconds))[0]


@pytest.fixture
def sent_tasks(monkeypatch) -> list[str]:
    """The task messages sent after commits (captured: nothing reaches the broker)."""
    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, *a, **kw: sent.append(name))
    return sent


@pytest.fixture
def ledger_ready(ready, sent_tasks):
    """A gateway that takes payments in test mode, with the ledger in place."""
