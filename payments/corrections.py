"""Manual corrections by staff, each with a reason, its events and its audit record, in one transaction
(docs/operations.md, "Corrections"). The admin's actions call these; nothing else changes an intent by hand."""
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record, model_snapshot
from gateway.errors import DomainError
from wallets import activity

from . import funding, services
from .models import DepositAssignment, HeldDeposit, PaymentIntent, UnmatchedDeposit

Status = PaymentIntent.Status
INTENT_FIELDS = ["status", "amount", "currency", "amount_received", "amount_seen", "cancellation_reason",
                 "canceled_at", "latest_charge"]


def _reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(code="parameter_missing", param="reason", message="Say why: a reason is required.")
    return reason


@transaction.atomic
def payment_intent_cancel_by_staff(*, intent: PaymentIntent, actor, reason: str,
                                   cancellation_reason: str = "abandoned", request=None) -> PaymentIntent:
    """Cancel an open intent (requires_confirmation or requires_action) as the merchant could, with the
    `payment_intent.canceled` event; refused for any other status (a paid intent is refunded, not canceled)."""
    reason = _reason_required(reason)
    if cancellation_reason not in services.MERCHANT_CANCELLATION_REASONS:
        raise DomainError(code="parameter_invalid", param="cancellation_reason",
                          message=f"cancellation_reason must be one of {', '.join(services.MERCHANT_CANCELLATION_REASONS)}.")
    before = model_snapshot(intent, INTENT_FIELDS)
    intent = services.payment_intent_cancel(
        intent=intent, reason=cancellation_reason,
        ctx=services.RequestContext(request_id=getattr(request, "request_id", "") or ""),
    )
    audit_record(actor=actor, action="payment_intent.cancel", obj=intent, before=before,
                 after=model_snapshot(intent, INTENT_FIELDS), reason=reason, request=request)
    return intent


def _assign_refusal(deposit: UnmatchedDeposit, intent: PaymentIntent) -> str:
    transfer = deposit.transfer
    if intent.merchant_id != deposit.merchant_id:
        return "the intent belongs to another merchant"
    if intent.livemode != deposit.livemode:
        return "the intent is in the other mode (test / live)"
    if intent.status != Status.REQUIRES_ACTION or intent.deposit_address_id is None:
        return f"the intent is {intent.status}; only an intent waiting for funds (requires_action) can be funded"
    if transfer.network.api_name not in intent.networks:
        return f"the intent does not accept {transfer.network.api_name}"
    if transfer.token_id is None or not intent.options.filter(token_id=transfer.token_id).exists():
        return "the intent does not accept this token"
    if transfer.orphaned_at is not None:
        return "its transfer left the chain (a reorg)"
    return ""


@transaction.atomic
def unmatched_deposit_assign(*, deposit: UnmatchedDeposit, intent: PaymentIntent, actor, reason: str,
                             request=None) -> DepositAssignment:
    """Count an unmatched deposit's transfer among the transfers of an open intent of the same merchant, then apply
    that intent's funds by the normal rules (payments.funding: Charge, processing / succeeded, events, ledger queue).
    Assigning it again to the same intent changes nothing more; to another intent is refused."""
    reason = _reason_required(reason)
    deposit = (UnmatchedDeposit.objects.select_for_update(of=("self",))
               .select_related("transfer__network", "transfer__token").get(pk=deposit.pk))
    existing = DepositAssignment.objects.filter(unmatched_deposit=deposit).first()
    if existing is not None:
        if existing.payment_intent_id == intent.pk:
            return existing
        raise DomainError(code="deposit_already_assigned", param="payment_intent",
                          message=f"{deposit.id} is already assigned to {existing.payment_intent_id}.")
    if deposit.refund_reference:
        raise DomainError(code="deposit_not_assignable", param="payment_intent",
                          message=f"{deposit.id} is being refunded ({deposit.refund_reference}): it cannot fund "
                                  "an intent unless that refund fails or is canceled.")
    if intent.deposit_address_id is not None:  # the order of funding.address_apply: the address, then the intent
        activity.deposit_address_lock(deposit_address_id=intent.deposit_address_id)
    intent = PaymentIntent.objects.select_for_update(of=("self",)).select_related("merchant").get(pk=intent.pk)
    refusal = _assign_refusal(deposit, intent)
    if refusal:
        raise DomainError(code="deposit_not_assignable", param="payment_intent",
                          message=f"{deposit.id} cannot fund {intent.id}: {refusal}.")
    transfer = deposit.transfer
    before = model_snapshot(intent, INTENT_FIELDS)
    assignment = DepositAssignment.objects.create(
        transfer=transfer, payment_intent=intent, unmatched_deposit=deposit, reason=reason,
        assigned_by=getattr(actor, "username", "") or str(actor),
    )
    intent = funding.address_apply(deposit_address_id=intent.deposit_address_id)
    audit_record(actor=actor, action="unmatched_deposit.assign", obj=deposit, before=before,
                 after={"payment_intent": intent.id, "transfer": transfer.id, **model_snapshot(intent, INTENT_FIELDS)},
                 reason=reason, request=request)
    return assignment


def unmatched_deposit_refund_mark(*, deposit_id: str, refund_id: str) -> None:
    """Record (refund_id) or clear ("") the refund giving an unmatched deposit back, under the deposit's row lock:
    the refunds call it in their transaction, so a deposit is never both refunded and assigned."""
    deposit = UnmatchedDeposit.objects.select_for_update(of=("self",)).get(pk=deposit_id)
    if deposit.refund_reference != refund_id:
        deposit.refund_reference = refund_id
        deposit.save(update_fields=["refund_reference"])


HOLD_FIELDS = funding.HOLD_FIELDS
HOLD_TRANSITIONS = {
    HeldDeposit.Status.HELD: {HeldDeposit.Status.RELEASED, HeldDeposit.Status.KEPT},
    HeldDeposit.Status.KEPT: {HeldDeposit.Status.RELEASED},  # a decision revisited (the address left the list)
    HeldDeposit.Status.RELEASED: set(),
}


def _held_deposit_decide(*, hold: HeldDeposit, to: str, actor, reason: str, request=None) -> HeldDeposit:
    """One decision for one on-chain transfer: a reorg that re-mined it gave it a new row and a new hold
    (funding._hold_carry), and a decision taken on either hold (the orphaned one too) decides every hold of the same
    network, tx_hash and log_index, each with its audit record; a release then counts the live row, once."""
    reason = _reason_required(reason)
    transfer = HeldDeposit.objects.filter(pk=hold.pk).values(
        "transfer__deposit_address_id", "transfer__network_id", "transfer__tx_hash", "transfer__log_index").get()
    address_id = transfer["transfer__deposit_address_id"]
    activity.deposit_address_lock(deposit_address_id=address_id)  # funding.address_apply's order: address first
    # Every row of the transfer has this recipient, so the address lock covers them all; the holds in id order.
    holds = list(HeldDeposit.objects.select_for_update(of=("self",)).filter(
        transfer__network_id=transfer["transfer__network_id"], transfer__tx_hash=transfer["transfer__tx_hash"],
        transfer__log_index=transfer["transfer__log_index"],
    ).order_by("pk"))
    locked = next(h for h in holds if h.pk == hold.pk)
    pending = [h for h in holds if h.status != to]
    if not pending:
        return locked
    refused = next((h for h in pending if to not in HOLD_TRANSITIONS[h.status]), None)
    if refused is not None:
        raise DomainError(code="held_deposit_unexpected_state", param="status",
                          message=f"{refused.id} is {refused.status}: it cannot be {to}.")
    decided_at, decided_by = timezone.now(), getattr(actor, "username", "") or str(actor)
    changes = []
    for row in pending:
        before = model_snapshot(row, HOLD_FIELDS)
        row.status, row.decided_at, row.decided_by, row.decision_reason = to, decided_at, decided_by, reason
        row.save(update_fields=HOLD_FIELDS)
        after = model_snapshot(row, HOLD_FIELDS)
        if row.pk != locked.pk:
            after["decided_with"] = locked.id  # the same on-chain transfer, another row of it (a reorg)
        changes.append((row, before, after))
    intent_after = None
    if to == HeldDeposit.Status.RELEASED:
        # Counted from now on by the normal rules (Charge, processing / succeeded, ledger queue, sweep), once.
        intent = funding.address_apply(deposit_address_id=address_id)
        intent_after = {"id": intent.id, **model_snapshot(intent, INTENT_FIELDS)} if intent else None
    for row, before, after in changes:
        if to == HeldDeposit.Status.RELEASED:
            after["payment_intent"] = intent_after
        audit_record(actor=actor, action=f"held_deposit.{'release' if to == HeldDeposit.Status.RELEASED else 'keep'}",
                     obj=row, before=before, after=after, reason=reason, request=request)
    return locked


@transaction.atomic
def held_deposit_release(*, hold: HeldDeposit, actor, reason: str, request=None) -> HeldDeposit:
    """Release a deposit held from a blocked sender: its transfer then funds the intent (or becomes an unmatched
    deposit) by the normal rules, in this transaction. Twice: nothing more."""
    return _held_deposit_decide(hold=hold, to=HeldDeposit.Status.RELEASED, actor=actor, reason=reason,
                                request=request)


@transaction.atomic
def held_deposit_keep(*, hold: HeldDeposit, actor, reason: str, request=None) -> HeldDeposit:
    """Keep a held deposit frozen on its deposit address (never credited, never swept) with the reason."""
    return _held_deposit_decide(hold=hold, to=HeldDeposit.Status.KEPT, actor=actor, reason=reason, request=request)
