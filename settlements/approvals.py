"""Staff decisions on money out held by a limit (docs/money-out.md, "Approvals"), maker-checker like the ledger
adjustments (settlements.adjustments): a staff member holding the approve permission, who is not the requester,
approves (the payout or refund is released to sending, its event written) or rejects with a reason (it is canceled
and its money returned in the ledger, with Stripe's events). Each decision is one transaction with its event and its
audit record; the database refuses a decision by the requester (CHECK `*_approval_four_eyes`). The admin asks for a
fresh TOTP code before it calls these (settlements.admin)."""
from collections.abc import Callable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import audit_record
from gateway.errors import DomainError

from . import payouts
from .limits import money_out_volume_add
from .models import Payout
from .refunds import services as refunds
from .refunds.models import Refund

APPROVED, REJECTED = "approved", "rejected"
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


def _decision_take(rows: QuerySet, pk: str, *, decision: str, action: str,
                   then: Callable[[Payout | Refund, dict], Payout | Refund], actor, note: str,
                   request) -> Payout | Refund:
    """What every decision does, in the caller's transaction: the note read (a rejection must say why, before
    anything is locked), the held row locked by `rows` (each caller's own lock: what it reads with the row, and
    which rows FOR UPDATE takes) and checked (still held and open, not asked for by `actor`), the decision recorded
    on it, then `then(row, before)`: what the decision does to the money (sent on, or given back), which returns
    the row as it ends up. Last, the audit record `action` of that row, with the note as its reason."""
    note = _reason_required(note) if decision == REJECTED else (note or "").strip()
    locked = rows.get(pk=pk)
    _check(locked, actor, "approve" if decision == APPROVED else "reject")
    before = _decide(locked, actor=actor, decision=decision, note=note)
    # A rejection's cancellation saves the row again through its state machine, `updated` with it.
    locked.save(update_fields=[*DECISION_FIELDS, "updated"] if decision == APPROVED else DECISION_FIELDS)
    done = then(locked, before)
    audit_record(actor=actor, action=action, obj=done, before=before, after=_after(done), reason=note,
                 request=request)
    return done


def _released(obj: Payout | Refund, before: dict, *, decimals: int | None, announce: Callable, event: str,
              wake: Callable[[], None]) -> Payout | Refund:
    """An approval lets the money go out after all: it counts in today's totals now (held, it added nothing), its
    `event` (written by `announce`, payout_event or refund_event) tells that it waits no more, and its sender is woken
    once this commits."""
    money_out_volume_add(merchant=obj.merchant, livemode=obj.livemode, currency=obj.currency,
                         amount_base_units=obj.amount_base_units, decimals=decimals)
    announce(obj, event, previous={"pending_reason": before["pending_reason"]})
    transaction.on_commit(wake)
    return obj


@transaction.atomic
def payout_approve(*, payout: Payout, actor, note: str = "", request=None) -> Payout:
    """Release a held payout to sending (`payout.updated`); it counts in today's totals of the limits."""
    def release(locked: Payout, before: dict) -> Payout:
        return _released(locked, before, decimals=locked.token.decimals, announce=payouts.payout_event,
                         event="payout.updated", wake=payouts.payouts_wake)

    rows = Payout.objects.select_for_update().select_related("merchant", "token")
    return _decision_take(rows, payout.pk, decision=APPROVED, action="payout.approve", then=release, actor=actor,
                          note=note, request=request)


@transaction.atomic
def payout_reject(*, payout: Payout, actor, note: str, request=None) -> Payout:
    """Cancel a held payout: its money back to the available balance (`payout_cancel` posting), `payout.canceled`."""
    return _decision_take(Payout.objects.select_for_update(), payout.pk, decision=REJECTED, action="payout.reject",
                          then=lambda locked, before: payouts.payout_cancel_held(payout=locked), actor=actor,
                          note=note, request=request)


@transaction.atomic
def refund_approve(*, refund: Refund, actor, note: str = "", request=None) -> Refund:
    """Release a held refund to sending (once it has an address), `refund.updated`; it counts in today's totals."""
    def release(locked: Refund, before: dict) -> Refund:
        return _released(locked, before, decimals=refunds.refund_decimals(locked), announce=refunds.refund_event,
                         event="refund.updated", wake=refunds.refunds_wake)

    rows = Refund.objects.select_for_update(of=("self",)).select_related("merchant", "token", "network")
    return _decision_take(rows, refund.pk, decision=APPROVED, action="refund.approve", then=release, actor=actor,
                          note=note, request=request)


@transaction.atomic
def refund_reject(*, refund: Refund, actor, note: str, request=None) -> Refund:
    """Cancel a held refund: the reservation released (and the Charge's amount_refunded), `refund.updated` with
    status canceled, as Stripe announces a canceled refund."""
    return _decision_take(Refund.objects.select_for_update(of=("self",)), refund.pk, decision=REJECTED,
                          action="refund.reject", then=lambda locked, before: refunds.refund_cancel_held(refund=locked),
                          actor=actor, note=note, request=request)
