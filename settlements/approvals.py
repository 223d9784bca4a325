"""Staff decisions on money out held by a limit (docs/money-out.md, "Approvals"), maker-checker like the ledger
adjustments (settlements.adjustments): a staff member holding the approve permission, who is not the requester,
approves (the payout or refund is released to sending, its event written) or rejects with a reason (it is canceled
and its money returned in the ledger, with Stripe's events). Each decision is one transaction with its event and its
audit record; the database refuses a decision by the requester (CHECK `*_approval_four_eyes`). The admin asks for a
fresh TOTP code before it calls these (settlements.admin)."""
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from gateway.errors import DomainError

from . import payouts
from .limits import money_out_volume_add
from .models import Payout
from .refunds import services as refunds
from .refunds.models import Refund

DECISION_FIELDS = ["awaiting_approval", "approval_decision", "approval_decided_by", "approval_decided_at",
                   "approval_note", "pending_reason"]


def _reason_required(note: str) -> str:
    note = (note or "").strip()
    if not note:
        raise DomainError(code="parameter_missing", param="note", message="Say why: a reason is required to reject.")
    return note


def _check(obj, actor, verb: str) -> None:
    """Held and not decided yet, still open, and not asked for by `actor` (maker-checker)."""
    open_statuses = (Payout.Status.PENDING,) if isinstance(obj, Payout) else (Refund.Status.PENDING,
                                                                               Refund.Status.REQUIRES_ACTION)
    if not obj.awaiting_approval or obj.status not in open_statuses:
        raise DomainError(code="approval_not_awaited", param="status",
                          message=f"{obj.id} is not awaiting an approval (status {obj.status}).")
    if obj.requested_by_id is not None and obj.requested_by_id == actor.pk:
        raise DomainError(code="maker_checker", param="approval_decided_by",
                          message=f"{obj.id} was requested by you: another staff member must {verb} it.")


def _decide(obj, *, actor, decision: str, note: str) -> dict:
    before = {"awaiting_approval": True, "pending_reason": obj.pending_reason, "status": obj.status}
    obj.awaiting_approval = False
    obj.approval_decision, obj.approval_decided_by, obj.approval_decided_at = decision, actor, timezone.now()
    obj.approval_note = note
    obj.pending_reason = ""
    return before


def _after(obj) -> dict:
    return {"status": obj.status, "approval_decision": obj.approval_decision,
            "approval_decided_by": obj.approval_decided_by_id, "approval_reasons": obj.approval_reasons}


@transaction.atomic
def payout_approve(*, payout: Payout, actor, note: str = "", request=None) -> Payout:
    """Release a held payout to sending (`payout.updated`); it counts in today's totals of the limits."""
    locked = Payout.objects.select_for_update().select_related("merchant", "token").get(pk=payout.pk)
    _check(locked, actor, "approve")
    before = _decide(locked, actor=actor, decision="approved", note=(note or "").strip())
    locked.save(update_fields=[*DECISION_FIELDS, "updated"])
    money_out_volume_add(merchant=locked.merchant, livemode=locked.livemode, currency=locked.currency,
                         amount_base_units=locked.amount_base_units, decimals=locked.token.decimals)
    payouts.payout_event(locked, "payout.updated", previous={"pending_reason": before["pending_reason"]})
    transaction.on_commit(payouts.payouts_wake)
    audit_record(actor=actor, action="payout.approve", obj=locked, before=before, after=_after(locked),
                 reason=locked.approval_note, request=request)
    return locked


@transaction.atomic
def payout_reject(*, payout: Payout, actor, note: str, request=None) -> Payout:
    """Cancel a held payout: its money back to the available balance (`payout_cancel` posting), `payout.canceled`."""
    note = _reason_required(note)
    locked = Payout.objects.select_for_update().get(pk=payout.pk)
    _check(locked, actor, "reject")
    before = _decide(locked, actor=actor, decision="rejected", note=note)
    locked.save(update_fields=DECISION_FIELDS)
    canceled = payouts.payout_cancel_held(payout=locked)
    audit_record(actor=actor, action="payout.reject", obj=canceled, before=before, after=_after(canceled),
                 reason=note, request=request)
    return canceled


@transaction.atomic
def refund_approve(*, refund: Refund, actor, note: str = "", request=None) -> Refund:
    """Release a held refund to sending (once it has an address), `refund.updated`; it counts in today's totals."""
    locked = Refund.objects.select_for_update(of=("self",)).select_related("merchant", "token", "network").get(
        pk=refund.pk)
    _check(locked, actor, "approve")
    before = _decide(locked, actor=actor, decision="approved", note=(note or "").strip())
    locked.save(update_fields=[*DECISION_FIELDS, "updated"])
    money_out_volume_add(merchant=locked.merchant, livemode=locked.livemode, currency=locked.currency,
                         amount_base_units=locked.amount_base_units, decimals=refunds.refund_decimals(locked))
    refunds.refund_event(locked, "refund.updated", previous={"pending_reason": before["pending_reason"]})
    transaction.on_commit(refunds.refunds_wake)
    audit_record(actor=actor, action="refund.approve", obj=locked, before=before, after=_after(locked),
                 reason=locked.approval_note, request=request)
    return locked


@transaction.atomic
def refund_reject(*, refund: Refund, actor, note: str, request=None) -> Refund:
    """Cancel a held refund: the reservation released (and the Charge's amount_refunded), `refund.updated` with
    status canceled, as Stripe announces a canceled refund."""
    note = _reason_required(note)
    locked = Refund.objects.select_for_update(of=("self",)).get(pk=refund.pk)
    _check(locked, actor, "reject")
    before = _decide(locked, actor=actor, decision="rejected", note=note)
    locked.save(update_fields=DECISION_FIELDS)
    canceled = refunds.refund_cancel_held(refund=locked)
    audit_record(actor=actor, action="refund.reject", obj=canceled, before=before, after=_after(canceled),
                 reason=note, request=request)
    return canceled
