"""What refunds (settlements.refunds, a layer up) change on a Charge and its PaymentIntent: `amount_refunded`, and
the `charge.refunded` event. Called inside the refund's own transaction, with the Charge's row locked by
`charge_lock_for_refund` first, so two refunds of one Charge never read the same amount left."""
from django.db.models import F

from .events import event_record
from .models import Charge, PaymentIntent
from .presenters import charge_json


def charge_lock_for_refund(*, charge_id: str) -> Charge:
    """The Charge's row, locked until the caller's transaction ends (call inside one)."""
    return (Charge.objects.select_for_update(of=("self",))
            .select_related("transfer__network", "transfer__token", "merchant").get(pk=charge_id))


def charge_refunded_change(*, charge: Charge, delta_minor: int, request_id: str = "",
                           idempotency_key: str = "") -> Charge:
    """Add `delta_minor` (negative: a refund failed or was canceled) to the Charge's and its intent's
    `amount_refunded`. A refund that adds announces `charge.refunded` with the Charge's new state. The database
    refuses more than the Charge's amount (check constraint): the caller checks first, under the row lock."""
    if delta_minor == 0:
        return charge
    previous = charge.amount_refunded
    Charge.objects.filter(pk=charge.pk).update(amount_refunded=F("amount_refunded") + delta_minor)
    PaymentIntent.objects.filter(pk=charge.payment_intent_id).update(
        amount_refunded=F("amount_refunded") + delta_minor)
    charge.refresh_from_db(fields=["amount_refunded"])
    if delta_minor > 0:
        event_record(merchant=charge.merchant, livemode=charge.livemode, type="charge.refunded", obj_id=charge.id,
                     snapshot=charge_json(charge), previous_attributes={"amount_refunded": previous},
                     request_id=request_id, idempotency_key=idempotency_key)
    return charge
