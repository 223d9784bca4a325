"""Ledger adjustments by hand, maker-checker (docs/operations.md, "Corrections"): one staff member proposes (with a
reason), another approves or rejects; approval posts one ADJUSTMENT journal transaction through
`journal_transaction_post`. Each step is one transaction with its audit record; the database refuses an approval by
the proposer (a CHECK constraint) as the service does."""
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record, model_snapshot
from gateway.errors import DomainError

from .models import JournalTransaction, LedgerAccount, LedgerAdjustment
from .services import Posting, journal_transaction_post

Status = LedgerAdjustment.Status
SOURCE_TYPE = "ledger_adjustment"


def _reason_required(reason: str, param: str = "reason") -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(code="parameter_missing", param=param, message="Say why: a reason is required.")
    return reason


def ledger_adjustment_validate(*, debit_account: LedgerAccount, credit_account: LedgerAccount,
                               amount_base_units: int) -> None:
    """Two different accounts of one asset and a positive whole amount, else a DomainError naming the field."""
    if not isinstance(amount_base_units, int) or isinstance(amount_base_units, bool) or amount_base_units <= 0:
        raise DomainError(code="parameter_invalid", param="amount_base_units",
                          message="The amount is a whole number of base units, more than 0.")
    if debit_account.pk == credit_account.pk:
        raise DomainError(code="parameter_invalid", param="credit_account",
                          message="The debit and the credit account must differ.")
    if (debit_account.network_id, debit_account.token_id) != (credit_account.network_id, credit_account.token_id):
        raise DomainError(code="parameter_invalid", param="credit_account",
                          message="Both accounts must hold the same asset (network and token).")


@transaction.atomic
def ledger_adjustment_propose(*, debit_account: LedgerAccount, credit_account: LedgerAccount,
                              amount_base_units: int, reason: str, actor, request=None) -> LedgerAdjustment:
    """Proposed, not posted: nothing moves until a second staff member approves."""
    reason = _reason_required(reason)
    ledger_adjustment_validate(debit_account=debit_account, credit_account=credit_account,
                               amount_base_units=amount_base_units)
    adjustment = LedgerAdjustment.objects.create(
        debit_account=debit_account, credit_account=credit_account, amount_base_units=amount_base_units,
        reason=reason, proposed_by=actor,
    )
    audit_record(actor=actor, action="ledger_adjustment.propose", obj=adjustment,
                 after=model_snapshot(adjustment), reason=reason, request=request)
    return adjustment


def _decide(adjustment: LedgerAdjustment, actor, verb: str) -> LedgerAdjustment:
    adjustment = LedgerAdjustment.objects.select_for_update().get(pk=adjustment.pk)
    if adjustment.status != Status.PROPOSED:
        raise DomainError(code="ledger_adjustment_decided", param="status",
                          message=f"{adjustment.id} is already {adjustment.status}.")
    if adjustment.proposed_by_id == actor.pk:
        raise DomainError(code="maker_checker", param="decided_by",
                          message=f"{adjustment.id} was proposed by you: another staff member must {verb} it.")
    return adjustment


@transaction.atomic
def ledger_adjustment_approve(*, adjustment: LedgerAdjustment, actor, note: str = "",
                              request=None) -> LedgerAdjustment:
    """Approve and post: debit +amount, credit -amount, one journal transaction (kind adjustment) whose source is
    the adjustment, so it is posted once whatever runs twice."""
    adjustment = _decide(adjustment, actor, "approve")
    before = model_snapshot(adjustment)
    journal, _ = journal_transaction_post(
        kind=JournalTransaction.Kind.ADJUSTMENT, source_type=SOURCE_TYPE, source_id=adjustment.id,
        postings=[Posting(account=adjustment.debit_account, amount=adjustment.amount_base_units),
                  Posting(account=adjustment.credit_account, amount=-adjustment.amount_base_units)],
        memo=adjustment.reason[:200],
    )
    adjustment.status, adjustment.decided_by, adjustment.decided_at = Status.APPROVED, actor, timezone.now()
    adjustment.journal, adjustment.decision_note = journal, (note or "").strip()
    adjustment.save(update_fields=["status", "decided_by", "decided_at", "journal", "decision_note"])
    audit_record(actor=actor, action="ledger_adjustment.approve", obj=adjustment, before=before,
                 after=model_snapshot(adjustment), reason=adjustment.decision_note or adjustment.reason,
                 request=request)
    return adjustment


@transaction.atomic
def ledger_adjustment_reject(*, adjustment: LedgerAdjustment, actor, note: str, request=None) -> LedgerAdjustment:
    note = _reason_required(note, "note")
    adjustment = _decide(adjustment, actor, "reject")
    before = model_snapshot(adjustment)
    adjustment.status, adjustment.decided_by, adjustment.decided_at = Status.REJECTED, actor, timezone.now()
    adjustment.decision_note = note
    adjustment.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(actor=actor, action="ledger_adjustment.reject", obj=adjustment, before=before,
                 after=model_snapshot(adjustment), reason=note, request=request)
    return adjustment
