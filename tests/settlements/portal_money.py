"""Helpers of the portal's money page tests: payouts and refunds written as rows (no ledger, no chain), for the pages
that only show them and for the permission-matrix walk."""
from gateway.ids import random_token
from settlements.models import Payout
from settlements.refunds.models import Refund
from tests.payments.portal import make_charge, make_intent
from tests.settlements.payout_fixtures import usable_address


def make_payout(merchant, *, amount=500, status=Payout.Status.PENDING, **fields) -> Payout:
    address = usable_address(merchant)
    return Payout.objects.create(merchant=merchant, livemode=address.livemode, network=address.network,
                                 token=address.token, payout_address=address, address=address.address, amount=amount,
                                 currency="usd", amount_base_units=amount * 10 ** (address.token.decimals - 2),
                                 status=status, **fields)


def make_refund(merchant, *, livemode=False, status=Refund.Status.REQUIRES_ACTION, amount=500, **fields) -> Refund:
    intent = make_intent(merchant, livemode=livemode, address=True)
    charge = make_charge(intent)
    transfer = charge.transfer
    return Refund.objects.create(merchant=merchant, livemode=livemode, charge=charge, payment_intent=intent,
                                 network=transfer.network, token=transfer.token, amount=amount, currency="usd",
                                 amount_base_units=amount * 10 ** (transfer.token.decimals - 2), status=status,
                                 claim_token=random_token(43), **fields)
