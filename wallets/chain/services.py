"""Writes of the chain watcher outside a scan step: placing and rewinding a network's cursor; resolving a balance
discrepancy found by reconciliation (wallets/chain/reconcile.py records them).

The cursor is the last block fully processed. It moves forward only inside `scan_step`, one contiguous range at a
time; these services only ever place it (once) or move it back, so no block is ever skipped.
"""
import logging

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from gateway.errors import DomainError
from gateway.metrics import ISSUER_BLACKLIST_ALERTS
from wallets.alerts import staff_email
from wallets.models import BalanceDiscrepancy, ChainCursor, IssuerBlacklistAlert, Network, ScannedBlock

logger = logging.getLogger(__name__)


def _check_block_number(block_number: int) -> None:
    if block_number < -1:
        raise DomainError(
            code="parameter_invalid", message=f"A cursor block number is -1 or more, not {block_number}.",
            param="block_number",
        )


def chain_cursor_init(*, network: Network, block_number: int) -> ChainCursor:
    """Create the network's cursor at `block_number` = the last block considered processed: the first scan step
    scans `block_number + 1` onwards (and takes `block_number`'s hash from the node as its anchor).

    Idempotent and never moves an existing cursor (use `chain_cursor_rewind` for that): returns it unchanged."""
    _check_block_number(block_number)
    cursor, created = ChainCursor.objects.get_or_create(
        network=network, defaults={"block_number": block_number, "block_hash": ""}
    )
    if created:
        logger.info("%s: cursor created at block %d", network.code, block_number)
    return cursor


@transaction.atomic
def chain_cursor_rewind(*, network: Network, block_number: int) -> ChainCursor:
    """Move the cursor back to `block_number` (the last block considered processed) so that the next steps rescan
    from `block_number + 1`: a backfill or a rescan (`manage.py scan --from-block`).

    Never moves it forward: a cursor at or below `block_number` is left alone (scanning goes on from where it is),
    and a network without a cursor gets one there. Safe to repeat: the rescan meets the transfers it already holds
    (unique per transaction, log and block hash) and records nothing twice. Waits for a running scan step (the
    cursor row lock); the stored hash chain above the new cursor is dropped and rebuilt by the rescan."""
    _check_block_number(block_number)
    cursor = ChainCursor.objects.select_for_update().filter(network=network).first()
    if cursor is None:
        return chain_cursor_init(network=network, block_number=block_number)
    if block_number >= cursor.block_number:
        return cursor
    previous = cursor.block_number
    cursor.block_number = block_number
    cursor.block_hash = (
        ScannedBlock.objects.filter(network=network, number=block_number).values_list("hash", flat=True).first() or ""
    )
    cursor.save(update_fields=["block_number", "block_hash", "updated"])
    ScannedBlock.objects.filter(network=network, number__gt=block_number).delete()
    logger.info("%s: cursor rewound from block %d to %d", network.code, previous, block_number)
    return cursor


NOTE_MAX_LENGTH = 2000


@transaction.atomic
def balance_discrepancy_resolve(*, discrepancy: BalanceDiscrepancy, user, note: str = "") -> BalanceDiscrepancy:
    """Mark a discrepancy resolved by staff `user` (what was done goes in `note`). The one transition of a
    discrepancy: locks the row, refuses one already resolved (`balance_discrepancy_resolved`, nothing changed), saves
    only the resolution fields. The facts (balances, block, difference) are never changed."""
    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise DomainError(code="parameter_invalid", message=f"A note has at most {NOTE_MAX_LENGTH} characters.",
                          param="note")
    locked = BalanceDiscrepancy.objects.select_for_update().get(pk=discrepancy.pk)
    if locked.resolved_at is not None:
        raise DomainError(
            code="balance_discrepancy_resolved",
            message=f"Discrepancy {locked.pk} was already resolved at {locked.resolved_at.isoformat()}.",
            status_code=409,
        )
    locked.resolved_at = timezone.now()
    locked.resolved_by = user
    locked.note = note
    locked.save(update_fields=["resolved_at", "resolved_by", "note"])
    audit_record(actor=user, action="balance_discrepancy.resolve", obj=locked, before={"resolved_at": None},
                 after={"resolved_at": locked.resolved_at, "difference_base_units": str(locked.difference_base_units)},
                 reason=note)
    logger.info("balance discrepancy %d resolved by %s", locked.pk, getattr(user, "pk", None))
    discrepancy.resolved_at, discrepancy.resolved_by, discrepancy.note = locked.resolved_at, user, note
    return locked


@transaction.atomic
def chain_rescan_request(*, network: Network, from_block: int, actor, reason: str, request=None) -> ChainCursor:
    """Staff asks for a block range to be scanned again (admin: Networks, "Rescan from a block"): the cursor goes
    back to `from_block - 1` (never forward) and the watcher, or the beat task, rescans from there; recorded
    transfers are not recorded twice (`manage.py scan` does the same and waits for the scan)."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(code="parameter_missing", param="reason", message="Say why: a reason is required.")
    if from_block < 0:
        raise DomainError(code="parameter_invalid", param="from_block", message="from_block must be 0 or more.")
    before = ChainCursor.objects.filter(network=network).values_list("block_number", flat=True).first()
    cursor = chain_cursor_rewind(network=network, block_number=from_block - 1)
    audit_record(actor=actor, action="network.rescan", obj=network, before={"cursor": before},
                 after={"cursor": cursor.block_number, "from_block": from_block}, reason=reason, request=request)
    return cursor


# --- Issuer blacklist alerts --------------------------------------------------------------------------------------


def issuer_blacklist_alerts_record(*, network: Network, found: list[dict]) -> int:
    """Record an IssuerBlacklistAlert for each blacklist log naming one of our addresses (in the scanner's step
    transaction), once per (network, tx, log): a rescan or a second scanner adds nothing. Logged and emailed to
    staff after the commit. `found`: dicts of the IssuerBlacklistAlert fields. Returns the alerts raised."""
    raised = 0
    for fields in found:
        with transaction.atomic():
            alert, created = IssuerBlacklistAlert.objects.get_or_create(
                network=network, tx_hash=fields["tx_hash"], log_index=fields["log_index"],
                defaults={k: v for k, v in fields.items() if k not in ("tx_hash", "log_index")})
        if not created:
            continue
        raised += 1
        what = f"{alert.token.currency.upper()} {alert.event} of our {alert.get_kind_display().lower()} " \
               f"{alert.address} on {network.code}"
        logger.error("issuer blacklist: %s (tx %s, block %d)", what, alert.tx_hash, alert.block_number)
        transaction.on_commit(lambda: ISSUER_BLACKLIST_ALERTS.labels(network.code).inc())
        transaction.on_commit(lambda what=what, alert=alert: staff_email(
            subject=f"issuer blacklist: {what}",
            message=(f"The issuer of {alert.token.currency.upper()} ({alert.token.contract_address}) blacklisted "
                     f"{alert.address}, a {alert.get_kind_display().lower()} of the gateway, on {network.code} "
                     f"(transaction {alert.tx_hash}, block {alert.block_number}). Its {alert.token.currency.upper()} "
                     f"can no longer move: sweeps and sends from it will fail.\n\nAdmin: Wallets > Issuer blacklist "
                     f"alerts (acknowledge with what was done).")))
    return raised


@transaction.atomic
def issuer_blacklist_alert_acknowledge(*, alert, actor, note: str, request=None):
    note = (note or "").strip()
    if not note:
        raise DomainError(code="parameter_missing", param="note", message="Say what was done.")
    locked = IssuerBlacklistAlert.objects.select_for_update().get(pk=alert.pk)
    if locked.acknowledged_at is not None:
        return locked
    locked.acknowledged_at = timezone.now()
    locked.acknowledged_by = getattr(actor, "username", "") or str(actor)
    locked.note = note
    locked.save(update_fields=["acknowledged_at", "acknowledged_by", "note"])
    audit_record(actor=actor, action="issuer_blacklist_alert.acknowledge", obj=locked, before={"acknowledged_at": None},
                 after={"acknowledged_at": locked.acknowledged_at.isoformat(), "acknowledged_by": locked.acknowledged_by},
                 reason=note, request=request)
    return locked
