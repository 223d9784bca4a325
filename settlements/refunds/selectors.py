"""Reads of refunds, always scoped to a merchant and mode."""
from django.db.models import QuerySet

from payments.models import Charge, PaymentIntent, UnmatchedDeposit

from .models import Refund


def refunds_for(*, merchant, livemode: bool) -> QuerySet[Refund]:
    return (Refund.objects.filter(merchant=merchant, livemode=livemode)
            .select_related("network", "token", "outgoing_transaction__mined_attempt",
                            "outgoing_transaction__current_attempt"))


def refund_get(*, merchant, livemode: bool, refund_id: str) -> Refund | None:
    return refunds_for(merchant=merchant, livemode=livemode).filter(pk=refund_id).first()


def refund_cursor(*, merchant, livemode: bool, refund_id: str) -> Refund | None:
    return Refund.objects.filter(merchant=merchant, livemode=livemode, pk=refund_id).only("id", "created").first()


def refund_by_claim_token(claim_token: str) -> Refund | None:
    if not claim_token or len(claim_token) > 64 or not claim_token.isalnum():
        return None
    return (Refund.objects.select_related("merchant", "network", "token", "outgoing_transaction__mined_attempt",
                                          "outgoing_transaction__current_attempt")
            .filter(claim_token=claim_token).first())


def refundable_charge(*, merchant, livemode: bool, charge_id: str | None, payment_intent_id: str | None
                      ) -> Charge | None:
    """The Charge a refund is for: the one named, or the intent's latest Charge."""
    if charge_id:
        return Charge.objects.filter(merchant=merchant, livemode=livemode, pk=charge_id).first()
    intent = PaymentIntent.objects.filter(merchant=merchant, livemode=livemode, pk=payment_intent_id).first()
    if intent is None or intent.latest_charge_id is None:
        return None
    return Charge.objects.filter(pk=intent.latest_charge_id).first()


def unmatched_deposit_get(*, merchant, livemode: bool, deposit_id: str) -> UnmatchedDeposit | None:
    return UnmatchedDeposit.objects.filter(merchant=merchant, livemode=livemode, pk=deposit_id).first()


def refunds_open(*, status: str | None = None) -> QuerySet[Refund]:
    """Every refund (for ops: `manage.py refunds list`), newest first."""
    qs = Refund.objects.select_related("merchant", "network", "token", "outgoing_transaction").order_by("-created")
    return qs.filter(status=status) if status else qs
