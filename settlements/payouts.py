"""Payouts and payout addresses: every write (docs/money-out.md, "Payouts").

    payout_address_add / _remove      the portal (with a fresh TOTP code), each with its PayoutAddressEvent
    payout_create                     available -> reserved under the merchant's balance row lock; `payout.created`;
                                      held for approval above a limit (settlements.limits), refused while frozen
    payout_cancel / payout_update     a pending payout: reserved -> available, `payout.canceled` / its metadata
    payout_send                       one pending payout: one ERC-20 transfer from the hot wallet through the
                                      transaction manager, with Dr in_transit, Cr hot_wallet in the same transaction;
                                      stays pending with a reason while the hot wallet is short
    payout_settle                     one in-transit payout whose transaction is final: paid (Dr reserved, Cr
                                      in_transit), or failed (the send reversed and reserved -> available)
    payouts_advance                   the beat task: send what can be sent, settle what is final
    payouts_run_automatic             the merchants' schedules (beat, `manage.py payouts run`)

Every status change goes through `payout_transition` (row locked, allowed from-states checked, event written in the
same transaction); every ledger posting has the source key (payout, po_..., kind), so a task run twice or killed at
any line posts nothing twice.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Case, When
from django.utils import timezone
from eth_abi import encode as abi_encode
from eth_utils import is_checksum_address

from audit.services import audit_batch, audit_record, model_snapshot
from gateway.celery import task_wake
from gateway.errors import DomainError
from gateway.metadata import metadata_merge
from merchants.models import Merchant
from payments.events import event_record
from payments.pricing import amount_due_base_units
from wallets.models import DepositAddress, Network, Token
from wallets.selectors import address_is_blocked
from wallets.outgoing.models import OutgoingTransaction, SendingAddress
from wallets.outgoing.services import outgoing_transaction_create

from .limits import (ACCOUNT_FROZEN, AWAITING_APPROVAL, account_frozen_error, merchant_frozen,
                     money_out_hold_reasons, money_out_requester)
from .models import AccountKind, JournalTransaction, Payout, PayoutAddress, PayoutAddressEvent, PayoutSchedule
from .presenters import payout_json
from .selectors import merchant_fiat_balances, minor_toward_zero, payouts_for
from .services import Posting, balances_lock, journal_transaction_post, ledger_account_get

logger = logging.getLogger(__name__)
Kind = JournalTransaction.Kind
Status = Payout.Status
PAYOUT = "payout"
ZERO_ADDRESS = "0x" + "0" * 40
TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
HOT_WALLET_SHORT = "hot_wallet_insufficient_funds"

# The one state machine: from-status -> the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.IN_TRANSIT, Status.CANCELED, Status.FAILED}),
    Status.IN_TRANSIT: frozenset({Status.PAID, Status.FAILED}),
    Status.PAID: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELED: frozenset(),
}
EVENTS = {Status.PAID: "payout.paid", Status.FAILED: "payout.failed", Status.CANCELED: "payout.canceled"}


DESTINATION_BLOCKED = "destination_blocked"  # pending_reason: the address is on the blocklist (wallets)


class PayoutError(DomainError):
    pass


# --- Payout addresses ---------------------------------------------------------------------------------------------

def payout_address_problem(*, address: str) -> str | None:
    """Why `address` cannot receive payouts, or None: 0x and 40 hex digits, a valid EIP-55 checksum when it has mixed
    case, not the zero address, not one of the gateway's own (a hot wallet, a deposit address)."""
    if not isinstance(address, str) or len(address) != 42 or not address.startswith("0x") \
            or any(c not in "0123456789abcdefABCDEF" for c in address[2:]):
        return "must be 0x followed by 40 hexadecimal digits."
    body = address[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(address):
        return "has a wrong checksum (EIP-55): check it was copied exactly."
    lower = address.lower()
    if lower == ZERO_ADDRESS:
        return "must not be the zero address."
    if SendingAddress.objects.filter(address=lower).exists():
        return "is one of the gateway's own wallets."
    if DepositAddress.objects.filter(address=lower).exists():
        return "is a deposit address of the gateway."
    if address_is_blocked(lower):
        return "is on the gateway's blocklist: it cannot receive payouts."
    return None


def _address_email(merchant, row: PayoutAddress, verb: str) -> None:
    send_mail(
        subject=f"Payout address {verb}: {row.network.api_name} {row.token.currency.upper()}",
        message=(f"A payout address was {verb} on your account:\n\n  {row.address}\n  network {row.network.api_name} "
                 f"({'live' if row.livemode else 'test'} mode), token {row.token.currency.upper()}\n\n"
                 + (f"Payouts can go to it from {row.usable_after:%Y-%m-%d %H:%M} UTC. " if verb == "added" else "")
                 + "If this was not you, remove it in the portal and contact us at once."),
        from_email=None, recipient_list=[merchant.email], fail_silently=True,
    )


@transaction.atomic
def payout_address_add(*, merchant, token: Token, address: str, user=None, client_ip: str = "",
                       request=None) -> PayoutAddress:
    """The merchant's payout address for this token (replacing the current one, which is removed), usable after the
    cooling-off period; the merchant is emailed after the commit. `address` is valid (payout_address_problem)."""
    now = timezone.now()
    replaced = []
    for old in PayoutAddress.objects.select_for_update().filter(merchant=merchant, network_id=token.network_id,
                                                                token=token, removed_at__isnull=True):
        _address_remove(old, user=user, client_ip=client_ip, now=now, reason="replaced")
        replaced.append({"id": old.pk, "address": old.address})
    row = PayoutAddress.objects.create(
        merchant=merchant, network_id=token.network_id, token=token, livemode=token.network.livemode,
        address=address.lower(),
        usable_after=now + timedelta(seconds=settings.GATEWAY_PAYOUT_ADDRESS_COOLING_OFF_SECONDS),
    )
    PayoutAddressEvent.objects.create(payout_address=row, action=PayoutAddressEvent.Action.ADDED, user=user,
                                      detail={"address": row.address, "client_ip": client_ip})
    transaction.on_commit(lambda: _address_email(merchant, row, "added"))
    audit_record(actor=user, action="payout_address.add", obj=row, before={"replaced": replaced} if replaced else None,
                 after=model_snapshot(row), request=request)
    return row


def _address_remove(row: PayoutAddress, *, user, client_ip: str, now, reason: str = "") -> None:
    row.removed_at = now
    row.save(update_fields=["removed_at"])
    PayoutAddressEvent.objects.create(payout_address=row, action=PayoutAddressEvent.Action.REMOVED, user=user,
                                      detail={"address": row.address, "client_ip": client_ip, "reason": reason})


@transaction.atomic
def payout_address_remove(*, payout_address: PayoutAddress, user=None, client_ip: str = "",
                          request=None) -> PayoutAddress:
    """Pending payouts to it are not sent (payout_send fails them and gives the money back)."""
    row = PayoutAddress.objects.select_for_update().get(pk=payout_address.pk)
    if row.removed_at is None:
        _address_remove(row, user=user, client_ip=client_ip, now=timezone.now())
        transaction.on_commit(lambda: _address_email(row.merchant, row, "removed"))
        audit_record(actor=user, action="payout_address.remove", obj=row, before={"removed_at": None},
                     after={"address": row.address, "removed_at": row.removed_at}, request=request)
    return row


# --- Payouts --------------------------------------------------------------------------------------------------------

def _accounts(payout: Payout, *kinds: str, hot_address: str = "") -> dict[str, object]:
    network, livemode = payout.network_id, payout.livemode
    found = {}
    for kind in kinds:
        found[kind] = ledger_account_get(
            kind=kind, network_id=network, token_id=payout.token_id, livemode=livemode,
            merchant_id=payout.merchant_id if kind.startswith("merchant_") else None,
            address=hot_address if kind == AccountKind.HOT_WALLET else "")
    return found


def _post(payout: Payout, kind: str, *postings: tuple[object, int]) -> None:
    journal_transaction_post(kind=kind, source_type=PAYOUT, source_id=payout.id, memo=payout.merchant_id,
                             postings=[Posting(account, amount) for account, amount in postings])


def _event(payout: Payout, type: str, *, request_id: str = "", idempotency_key: str = "",
           previous: dict | None = None) -> None:
    fresh = payouts_for(merchant=payout.merchant_id, livemode=payout.livemode).select_related("merchant").get(
        pk=payout.pk)
    event_record(merchant=fresh.merchant, livemode=payout.livemode, type=type, obj_id=payout.id,
                 snapshot=payout_json(fresh), previous_attributes=previous, request_id=request_id,
                 idempotency_key=idempotency_key)


@transaction.atomic
def payout_transition(*, payout: Payout, to: str, request_id: str = "", idempotency_key: str = "",
                      **fields) -> Payout:
    """The one way a payout's status changes: lock the row, check the move from the status it has NOW, save with
    `update_fields`, write its event (payout.paid / .failed / .canceled) in the same transaction. Raises otherwise."""
    locked = Payout.objects.select_for_update().get(pk=payout.pk)
    if to not in TRANSITIONS[locked.status]:
        raise PayoutError(code="payout_unexpected_state", status_code=400,
                          message=f"This payout has a status of {locked.status}; it cannot become {to}.")
    previous = locked.status
    locked.status = to
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=["status", "updated", *fields])
    if to in EVENTS:
        _event(locked, EVENTS[to], request_id=request_id, idempotency_key=idempotency_key,
               previous={"status": previous})
    return locked


def payout_destination(*, merchant, token: Token, now=None) -> PayoutAddress:
    """The merchant's usable payout address for the token, or a refusal naming `crypto[network]`."""
    now = now or timezone.now()
    row = PayoutAddress.objects.filter(merchant=merchant, token=token, removed_at__isnull=True).first()
    if row is None:
        raise PayoutError(code="payout_address_missing", param="crypto[network]",
                          message=f"No payout address for {token.currency} on {token.network.api_name}: add one "
                                  f"in the portal first.")
    if row.usable_after > now:
        raise PayoutError(code="payout_address_cooling_off", param="crypto[network]",
                          message=f"The payout address for {token.currency} on {token.network.api_name} can be "
                                  f"used from {int(row.usable_after.timestamp())} (cooling-off period).")
    if address_is_blocked(row.address):
        raise PayoutError(code="payout_address_blocked", param="crypto[network]",
                          message=f"The payout address for {token.currency} on {token.network.api_name} is on the "
                                  f"gateway's blocklist: no payout can be sent to it. Contact support.")
    return row


@transaction.atomic
def payout_create(*, merchant, token: Token, amount: int, currency: str, metadata: dict | None = None,
                  description: str = "", automatic: bool = False, request_id: str = "",
                  idempotency_key: str = "", actor=None, request=None) -> Payout:
    """A pending payout of `amount` (minor units of the token's pegged `currency`) to the merchant's payout address:
    the merchant's available balance row is locked, checked and moved to reserved in this transaction, so payouts
    created at once never overdraw it. `payout.created` in the same transaction, then its audit record (`actor`; the
    request's API key by default).

    Refused (`account_frozen`, nothing written) while the merchant is frozen. Above a limit on money out (the
    merchant's or the operator's, settlements.limits) it is created all the same but held: `pending` with
    `awaiting_approval` until a staff member other than the requester approves it (settlements.approvals)."""
    if merchant_frozen(merchant_id=merchant.pk):
        raise account_frozen_error(what="payout")
    destination = payout_destination(merchant=merchant, token=token)
    requester = money_out_requester(actor=actor, merchant=merchant)
    base_units = amount_due_base_units(amount_minor=amount, currency=currency, token_decimals=token.decimals)
    payout = Payout(merchant=merchant, livemode=token.network.livemode, network=token.network, token=token,
                    payout_address=destination, address=destination.address, amount=amount, currency=currency,
                    amount_base_units=base_units, automatic=automatic, metadata=metadata or {},
                    description=description, requested_by_id=requester.user_id, requester=requester.label)
    accounts = _accounts(payout, AccountKind.MERCHANT_AVAILABLE, AccountKind.MERCHANT_RESERVED)
    available_account = accounts[AccountKind.MERCHANT_AVAILABLE]
    available = -balances_lock(available_account, accounts[AccountKind.MERCHANT_RESERVED])[available_account.id]
    if base_units > available:
        shown = minor_toward_zero(amount_base_units=available, currency=currency, decimals=token.decimals)
        raise PayoutError(code="balance_insufficient", param="amount",
                          message=f"You have insufficient funds: {shown} {currency} available in "
                                  f"{token.currency} on {token.network.api_name}, {amount} asked.")
    reasons = money_out_hold_reasons(merchant=merchant, livemode=payout.livemode, currency=currency,
                                     amount_base_units=base_units, decimals=token.decimals)
    if reasons:
        payout.awaiting_approval, payout.approval_reasons, payout.pending_reason = True, reasons, AWAITING_APPROVAL
    payout.save(force_insert=True)
    _post(payout, Kind.PAYOUT_RESERVE, (available_account, base_units),
          (accounts[AccountKind.MERCHANT_RESERVED], -base_units))
    _event(payout, "payout.created", request_id=request_id, idempotency_key=idempotency_key)
    if not reasons:
        transaction.on_commit(_wake)
    audit_record(actor=actor, action="payout.create", obj=payout, after=model_snapshot(payout), request=request)
    return payout


def payouts_wake() -> None:
    task_wake("settlements.tasks.advance_payouts")


_wake = payouts_wake
payout_event = _event


def _give_back(payout: Payout, kind: str) -> None:
    """reserved -> available (a canceled payout, or one that failed)."""
    accounts = _accounts(payout, AccountKind.MERCHANT_AVAILABLE, AccountKind.MERCHANT_RESERVED)
    _post(payout, kind, (accounts[AccountKind.MERCHANT_RESERVED], payout.amount_base_units),
          (accounts[AccountKind.MERCHANT_AVAILABLE], -payout.amount_base_units))


@transaction.atomic
def payout_cancel(*, payout: Payout, request_id: str = "", idempotency_key: str = "", actor=None,
                  request=None) -> Payout:
    """A pending payout (nothing sent yet: its send and its cancellation both lock the row) gives its money back."""
    locked = Payout.objects.select_for_update().get(pk=payout.pk)
    canceled = payout_cancel_held(payout=locked, request_id=request_id, idempotency_key=idempotency_key)
    audit_record(actor=actor, action="payout.cancel", obj=canceled, before={"status": Status.PENDING},
                 after={"status": canceled.status}, request=request)
    return canceled


def payout_cancel_held(*, payout: Payout, request_id: str = "", idempotency_key: str = "") -> Payout:
    """The cancellation itself, in the caller's transaction, `payout` locked by it: reserved -> available, then
    `canceled` with `payout.canceled` (the merchant's cancel, a staff rejection of a held payout)."""
    if payout.status != Status.PENDING or payout.outgoing_transaction_id is not None:
        raise PayoutError(code="payout_unexpected_state",
                          message=f"You cannot cancel this payout because it has a status of {payout.status}.")
    _give_back(payout, Kind.PAYOUT_CANCEL)
    return payout_transition(payout=payout, to=Status.CANCELED, request_id=request_id,
                             idempotency_key=idempotency_key, pending_reason="", awaiting_approval=False)


@transaction.atomic
def payout_update(*, payout: Payout, metadata: dict | None, clear_metadata: bool = False, actor=None,
                  request=None) -> Payout:
    locked = Payout.objects.select_for_update().get(pk=payout.pk)
    if clear_metadata or metadata:
        before = dict(locked.metadata)
        locked.metadata = metadata_merge(locked.metadata, metadata, clear=clear_metadata)
        if locked.metadata != before:
            locked.save(update_fields=["metadata", "updated"])
            audit_record(actor=actor, action="payout.update", obj=locked, before={"metadata": before},
                         after={"metadata": locked.metadata}, request=request)
    return locked


def transfer_calldata(*, to_address: str, amount_base_units: int) -> bytes:
    return TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to_address, amount_base_units])


@transaction.atomic
def payout_send(*, payout_id: str) -> Payout | None:
    """Send one pending payout, or leave it pending with a reason. In one transaction: the payout row locked, the hot
    wallet's ledger balance row of the token locked and checked (what it holds less what is in flight: sends are
    credited out of it when they are recorded), the outgoing transaction stored (source_reference = the payout id,
    so it can never pay twice), Dr in_transit / Cr hot_wallet posted, the payout `in_transit`."""
    payout = (Payout.objects.select_for_update(skip_locked=True, of=("self",))
              .select_related("network", "token", "payout_address").filter(pk=payout_id).first())
    if payout is None or payout.status != Status.PENDING or payout.awaiting_approval:
        return None
    if merchant_frozen(merchant_id=payout.merchant_id):
        # Held while the account is frozen (its merchant row read FOR SHARE: a freeze waits for this transaction);
        # sent by the first run after the unfreeze.
        return _hold(payout, ACCOUNT_FROZEN)
    if address_is_blocked(payout.address):
        # Blocked after the payout was queued: held, not sent (staff or the merchant cancel it; it goes out if the
        # address leaves the list).
        if payout.pending_reason != DESTINATION_BLOCKED:
            logger.warning("payout %s held: its destination %s is on the blocklist", payout.id, payout.address)
            payout.pending_reason = DESTINATION_BLOCKED
            payout.save(update_fields=["pending_reason", "updated"])
        return payout
    if payout.payout_address.removed_at is not None:
        _give_back(payout, Kind.PAYOUT_FAILURE)
        return payout_transition(payout=payout, to=Status.FAILED, pending_reason="",
                                 failure_code="payout_address_removed",
                                 failure_message="The payout address was removed before the payout was sent.")
    # The sending address first, then the balances: the order of every sender that records a send and posts it in
    # one transaction (outgoing_transaction_create locks the sending address), so none of them deadlock.
    hot = SendingAddress.objects.select_for_update().filter(network=payout.network,
                                                            purpose=SendingAddress.Purpose.HOT).first()
    reason = ""
    if hot is None:
        reason = "hot_wallet_missing"
    else:
        accounts = _accounts(payout, AccountKind.HOT_WALLET, AccountKind.IN_TRANSIT, hot_address=hot.address)
        hot_account, in_transit = accounts[AccountKind.HOT_WALLET], accounts[AccountKind.IN_TRANSIT]
        if balances_lock(hot_account, in_transit)[hot_account.id] < payout.amount_base_units:
            reason = HOT_WALLET_SHORT
    if reason:
        return _hold(payout, reason)
    tx = outgoing_transaction_create(
        network=payout.network, to_address=payout.token.contract_address, purpose=PAYOUT, source_reference=payout.id,
        gas_limit=settings.GATEWAY_PAYOUT_GAS_LIMIT,
        data=transfer_calldata(to_address=payout.address, amount_base_units=payout.amount_base_units),
    )
    _post(payout, Kind.PAYOUT_SEND, (in_transit, payout.amount_base_units), (hot_account, -payout.amount_base_units))
    return payout_transition(payout=payout, to=Status.IN_TRANSIT, outgoing_transaction=tx, pending_reason="")


def _hold(payout: Payout, reason: str) -> Payout:
    """Keep a pending payout waiting, its new reason recorded once (and logged)."""
    if payout.pending_reason != reason:
        logger.warning("payout %s waits: %s", payout.id, reason)
        payout.pending_reason = reason
        payout.save(update_fields=["pending_reason", "updated"])
    return payout


FINISHED = (OutgoingTransaction.Status.FINAL, OutgoingTransaction.Status.FAILED, OutgoingTransaction.Status.CANCELLED)


@transaction.atomic
def payout_settle(*, payout_id: str) -> Payout | None:
    """An in-transit payout whose transaction is final: `paid` (Dr reserved, Cr in_transit: the liability is
    settled), or `failed` when it reverted or was cancelled (Dr hot_wallet, Cr in_transit, and reserved ->
    available), each with its event. None while the transaction is not final."""
    payout = (Payout.objects.select_for_update(skip_locked=True, of=("self",))
              .select_related("outgoing_transaction").filter(pk=payout_id).first())
    if payout is None or payout.status != Status.IN_TRANSIT or payout.outgoing_transaction.status not in FINISHED:
        return None
    tx = payout.outgoing_transaction
    in_transit = _accounts(payout, AccountKind.IN_TRANSIT)[AccountKind.IN_TRANSIT]
    x = payout.amount_base_units
    if tx.status == OutgoingTransaction.Status.FINAL:
        reserved = _accounts(payout, AccountKind.MERCHANT_RESERVED)[AccountKind.MERCHANT_RESERVED]
        _post(payout, Kind.PAYOUT_SETTLE, (reserved, x), (in_transit, -x))
        return payout_transition(payout=payout, to=Status.PAID, arrived_at=timezone.now())
    hot = _accounts(payout, AccountKind.HOT_WALLET, hot_address=tx.from_address)[AccountKind.HOT_WALLET]
    _post(payout, Kind.PAYOUT_SEND_REVERSAL, (hot, x), (in_transit, -x))
    _give_back(payout, Kind.PAYOUT_FAILURE)
    code = "transaction_reverted" if tx.status == OutgoingTransaction.Status.FAILED else "transaction_cancelled"
    return payout_transition(payout=payout, to=Status.FAILED, failure_code=code,
                             failure_message=f"The on-chain transfer {tx.status}: the amount is back in the "
                                             f"available balance.")


def payouts_advance(*, limit: int = 500) -> dict[str, int]:
    """The beat task's work: send pending payouts (oldest first), settle in-transit ones whose transaction is final.
    One transaction per payout; one that fails is logged and left for the next run."""
    done = {"sent": 0, "settled": 0, "waiting": 0}
    # Those already waiting for a reason (frozen merchant, blocked destination, hot wallet short) go after the fresh
    # ones: a pile of held payouts never fills the batch and starves the others.
    pending = list(Payout.objects.filter(status=Status.PENDING, awaiting_approval=False)
                   .order_by(Case(When(pending_reason="", then=0), default=1), "created")
                   .values_list("id", flat=True)[:limit])
    for payout_id in pending:
        try:
            result = payout_send(payout_id=payout_id)
        except Exception:
            logger.exception("sending payout %s failed", payout_id)
            continue
        if result is not None:
            done["sent" if result.status != Status.PENDING else "waiting"] += 1
    open_ids = list(Payout.objects.filter(status=Status.IN_TRANSIT, outgoing_transaction__status__in=FINISHED)
                    .order_by("created").values_list("id", flat=True)[:limit])
    for payout_id in open_ids:
        try:
            if payout_settle(payout_id=payout_id) is not None:
                done["settled"] += 1
        except Exception:
            logger.exception("settling payout %s failed", payout_id)
    return done


# --- Automatic payouts ----------------------------------------------------------------------------------------------

SCHEDULE_FIELDS = ["interval", "weekly_anchor", "minimum_amount"]


@transaction.atomic
def payout_schedule_set(*, merchant, interval: str, weekly_anchor: int = 0, minimum_amount: int = 0,
                        actor=None, request=None) -> PayoutSchedule:
    """The merchant's automatic payouts (portal and admin); the next due run follows the new schedule."""
    current = PayoutSchedule.objects.select_for_update().filter(merchant=merchant).first()
    before = model_snapshot(current, SCHEDULE_FIELDS) if current else None
    schedule, _ = PayoutSchedule.objects.update_or_create(
        merchant=merchant, defaults=dict(interval=interval, weekly_anchor=weekly_anchor,
                                         minimum_amount=minimum_amount))
    audit_record(actor=actor, action="payout_schedule.set", obj=schedule, before=before,
                 after=model_snapshot(schedule, SCHEDULE_FIELDS), request=request)
    return schedule


def schedule_due(schedule: PayoutSchedule, now) -> bool:
    if schedule.interval == PayoutSchedule.Interval.MANUAL:
        return False
    if schedule.interval == PayoutSchedule.Interval.WEEKLY and now.weekday() != schedule.weekly_anchor:
        return False
    return schedule.last_run_at is None or schedule.last_run_at.date() < now.date()


def payouts_run_automatic(*, now=None, merchant=None, actor="task:payouts_run_automatic") -> list[Payout]:
    """One run per due schedule (daily: once a UTC day; weekly: on its weekday): for every usable payout address of
    the merchant, a payout of the whole available balance of that asset in minor units, when at least the minimum.
    Each merchant in one transaction under its schedule row's lock (SKIP LOCKED), so two runs never pay twice.
    The payouts' audit records (`actor`) are appended at the end of that transaction (audit_batch), after every
    balance row it locks."""
    now = now or timezone.now()
    created: list[Payout] = []
    candidates = PayoutSchedule.objects.exclude(interval=PayoutSchedule.Interval.MANUAL)
    if merchant is not None:
        candidates = candidates.filter(merchant=merchant)
    for merchant_id in list(candidates.values_list("merchant_id", flat=True)):
        with transaction.atomic(), audit_batch():
            schedule = (PayoutSchedule.objects.select_for_update(skip_locked=True).select_related("merchant")
                        .filter(pk=merchant_id).first())
            if schedule is None or not schedule_due(schedule, now):
                continue
            if merchant_frozen(merchant_id=merchant_id):
                # Nothing is paid to a frozen account; its schedule is not marked run, so the first run after the
                # unfreeze pays it.
                logger.warning("automatic payouts of %s skipped: the account is frozen", merchant_id)
                continue
            for destination in PayoutAddress.objects.filter(merchant_id=merchant_id, removed_at__isnull=True,
                                                            usable_after__lte=now).select_related("token__network"):
                if address_is_blocked(destination.address):
                    logger.warning("automatic payout skipped: %s's payout address %s is on the blocklist",
                                   merchant_id, destination.address)
                    continue
                token = destination.token
                currency = token.pegged_currency
                if not currency:
                    continue
                balances = {(a.network, a.token_currency): a for b in merchant_fiat_balances(
                    merchant=schedule.merchant, livemode=destination.livemode) for a in b.assets}
                asset = balances.get((token.network.api_name, token.currency))
                amount = minor_toward_zero(amount_base_units=asset.available, currency=currency,
                                           decimals=token.decimals) if asset else 0
                if amount <= 0 or amount < schedule.minimum_amount:
                    continue
                created.append(payout_create(merchant=schedule.merchant, token=token, amount=amount,
                                             currency=currency, automatic=True, actor=actor))
            schedule.last_run_at = now
            schedule.save(update_fields=["last_run_at"])
    return created


def network_active(*, livemode: bool, network_name: str) -> bool:
    return Network.objects.filter(api_name=network_name, livemode=livemode, is_active=True).exists()


def network_token(*, livemode: bool, network_name: str, token_currency: str) -> Token | None:
    """The active token of that API network name and currency in this mode, or None."""
    network = Network.objects.filter(api_name=network_name, livemode=livemode, is_active=True).first()
    if network is None:
        return None
    return Token.objects.filter(network=network, currency=token_currency, is_active=True).select_related(
        "network").first()
