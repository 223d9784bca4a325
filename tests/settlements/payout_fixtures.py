"""Helpers of the payout tests: a merchant with money available, a payout address past its cooling-off period."""
from datetime import timedelta

from django.utils import timezone

from settlements.models import JournalTransaction, Payout, PayoutAddress
from settlements.payouts import payout_address_add
from settlements.services import ledger_post_charge_facts
from tests.settlements.conftest import ONE_USDT, paid_charge, token

RECIPIENT = "0x" + "5e" * 20


def funded(merchant, amount_base_units: int = 10 * ONE_USDT):
    """A Charge of `amount_base_units` USDT credited and released (available at once)."""
    charge = paid_charge(merchant, amount_base_units)
    ledger_post_charge_facts()
    return charge


def usable_address(merchant, *, currency: str = "usdt", address: str = RECIPIENT) -> PayoutAddress:
    row = payout_address_add(merchant=merchant, token=token(currency), address=address)
    PayoutAddress.objects.filter(pk=row.pk).update(usable_after=timezone.now() - timedelta(seconds=1))
    row.refresh_from_db()
    return row


def create_payout(api, amount=500, **extra):
    headers = {k: extra.pop(k) for k in list(extra) if k.startswith("HTTP_")}
    return api.post("/v1/payouts", {"amount": amount, "currency": "usd", "crypto[network]": "bsc",
                                    "crypto[token_currency]": "usdt", **extra}, **headers)


def snapshot() -> tuple:
    """What a refused request must leave unchanged."""
    from payments.models import Event
    return (Payout.objects.count(), JournalTransaction.objects.count(), Event.objects.count())
