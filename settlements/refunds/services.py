"""Every write of a refund (docs/money-out.md, "Refunds"): one function per step, each in one database transaction
with its event row and its ledger postings.

    refund_create    lock the Charge, check what is left, reserve the money (merchant_available -> merchant_reserved;
                     an unmatched deposit: deposits -> merchant_reserved), pending or requires_action
    refund_claim     the customer's address from the claim page: requires_action -> pending
    refund_send      a pending refund with an address becomes ONE outgoing transaction from the hot wallet
                     (Dr in_transit, Cr hot_wallet), or waits with a reason (hot wallet short, approval)
    refund_settle    its transaction final: succeeded (Dr merchant_reserved, Cr in_transit); failed or cancelled:
                     the send reversed, the reservation released, `refund.failed`
    refund_cancel    while nothing was sent: canceled, the reservation released
"""
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Case, Sum, When

from audit.services import audit_record, model_snapshot
from gateway.celery import task_wake
from gateway.errors import DomainError
from gateway.ids import random_token
from gateway.metadata import metadata_merge
from merchants.models import Merchant
from payments.charge_refunds import charge_lock_for_refund, charge_refunded_change
from payments.corrections import unmatched_deposit_refund_mark
from payments.events import event_record
from payments.models import Charge, ChargeDust, DepositAssignment, UnmatchedDeposit
from wallets.chain.scanner import rpc_client_or_none
from wallets.selectors import address_is_blocked
from wallets.outgoing.models import OutgoingTransaction, SendingAddress
from wallets.outgoing.services import outgoing_transaction_create

from ..limits import (ACCOUNT_FROZEN, AWAITING_APPROVAL, account_frozen_error, merchant_frozen,
                      money_out_hold_reasons, money_out_requester)
from ..models import AccountKind, JournalTransaction, LedgerAccount
from ..services import Posting, balances_lock, journal_transaction_post, ledger_account_get
from .amounts import refund_base_units
from .models import Refund
from .presenters import claim_url, refund_json

logger = logging.getLogger(__name__)

Status = Refund.Status
Kind = JournalTransaction.Kind
OutStatus = OutgoingTransaction.Status
SOURCE = "refund"  # the ledger's source_type; source_id is the refund's id
PURPOSE = "refund"  # OutgoingTransaction.purpose; source_reference is the refund's id
CLOSED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
TRANSFER_SELECTOR = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
NATIVE_GAS = 21_000

# The state machine (Stripe's statuses): from-status -> the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.REQUIRES_ACTION: frozenset({Status.PENDING, Status.CANCELED}),
    Status.PENDING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELED: frozenset(),
}

# Why a pending refund is not sent yet (`pending_reason`): AWAITING_APPROVAL and ACCOUNT_FROZEN (settlements.limits),
# and these.
HOT_WALLET_INSUFFICIENT = "hot_wallet_insufficient_funds"
HOT_WALLET_MISSING = "hot_wallet_not_configured"
CHAIN_UNAVAILABLE = "chain_unavailable"
DESTINATION_BLOCKED = "destination_blocked"  # the address went on the blocklist after the refund was queued


@dataclass(frozen=True)
class RefundContext:
    """Where a change came from, recorded on its events and its audit record: `actor` (the API key, a staff user;
    default the request's, else the system) and `request` (IP, request id)."""

    request_id: str = ""
    idempotency_key: str = ""
    actor: object = None
    request: object = None


def _snapshot(refund: Refund) -> dict:
    """Its fields but the claim token (the customer's link: whoever holds it says where the money goes)."""
    return model_snapshot(refund, [f.name for f in Refund._meta.concrete_fields if f.name != "claim_token"])


def _audit(refund: Refund, action: str, ctx: RefundContext, *, before=None, after=None) -> None:
    """Last in the transaction (the audit head is held until the commit)."""
    audit_record(actor=ctx.actor, action=action, obj=refund, before=before, after=after, request=ctx.request)


class RefundTransitionError(DomainError):
    def __init__(self, *, refund: Refund, action: str):
        super().__init__(code="refund_unexpected_state", status_code=400,
                         message=f"You cannot {action} this refund because it has a status of {refund.status}.")


def refund_transition(*, refund: Refund, to: str, event_type: str = "refund.updated",
                      ctx: RefundContext = RefundContext(), **fields) -> Refund:
    """The one way a refund's status changes: lock the row, check the move from the status it has NOW, save it with
    the given fields, write the event, in the caller's transaction (or one of its own)."""
    with transaction.atomic():
        locked = Refund.objects.select_for_update().get(pk=refund.pk)
        if to not in TRANSITIONS[locked.status]:
            raise RefundTransitionError(refund=locked, action=f"move to {to}")
        previous = {"status": locked.status, **{name: getattr(locked, name) for name in fields
                                                if name != "outgoing_transaction"}}
        locked.status = to
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=["status", "updated", *fields])
        _event(locked, event_type, ctx, previous_attributes=previous)
    return locked


def _event(refund: Refund, type: str, ctx: RefundContext, previous_attributes: dict | None = None) -> None:
    event_record(merchant=refund.merchant, livemode=refund.livemode, type=type, obj_id=refund.id,
                 snapshot=refund_json(refund), previous_attributes=previous_attributes,
                 request_id=ctx.request_id, idempotency_key=ctx.idempotency_key)


# --- Where the money goes: checked at the edge (serializers, the claim form) -------------------------------------


def destination_address_check(address: str, *, param: str) -> str:
    """The address lower-cased, or a refusal naming `param`: 0x + 40 hex digits, the EIP-55 checksum right when it
    has both cases, not the zero address, not one of the gateway's own (a hot wallet or a deposit address: money
    sent there would come back as a deposit, or never leave)."""
    from eth_utils import is_checksum_address  # noqa: PLC0415 (eth_utils is heavy; only the refund paths need it)

    from wallets.models import DepositAddress

    value = address.strip()
    if len(value) != 42 or not value.startswith("0x") or any(c not in "0123456789abcdefABCDEF" for c in value[2:]):
        raise DomainError(code="parameter_invalid", param=param,
                          message=f"Invalid {param}: an address is 0x followed by 40 hexadecimal digits.")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise DomainError(code="parameter_invalid", param=param,
                          message=f"Invalid {param}: the address's checksum (its mix of capitals) is wrong; "
                                  f"check it for a typo.")
    lower = value.lower()
    if int(body, 16) == 0:
        raise DomainError(code="parameter_invalid", param=param,
                          message=f"Invalid {param}: the zero address burns what is sent to it.")
    if SendingAddress.objects.filter(address=lower).exists() or DepositAddress.objects.filter(address=lower).exists():
        raise DomainError(code="parameter_invalid", param=param,
                          message=f"Invalid {param}: this is one of the gateway's own addresses; give the "
                                  f"customer's.")
    if address_is_blocked(lower):
        raise DomainError(code="address_blocked", param=param,
                          message=f"Invalid {param}: the gateway cannot send funds to this address.")
    return lower


# --- Create ---------------------------------------------------------------------------------------------------------


def charge_base_units(charge: Charge) -> int:
    """What the Charge brought the merchant in base units: its transfer and the dust it carries (not reversed), as
    its ledger credit posted them."""
    dust = (ChargeDust.objects.filter(charge=charge, reversed=False)
            .aggregate(s=Sum("transfer__amount_base_units"))["s"] or 0)
    return int(charge.transfer.amount_base_units) + int(dust)


def _accounts(refund: Refund, *kinds: str) -> dict[str, LedgerAccount]:
    network = refund.network
    return {kind: ledger_account_get(kind=kind, network_id=network.id, token_id=refund.token_id,
                                     merchant_id=refund.merchant_id if kind.startswith("merchant_") else None,
                                     livemode=network.livemode) for kind in kinds}


def _reserve(refund: Refund) -> None:
    """Charge: the merchant's available -> reserved, refused when available is short (`balance_insufficient`).
    Unmatched deposit (never credited to a merchant): deposits -> reserved (the funds at the deposit address are
    owed to the customer now)."""
    amount = refund.amount_base_units
    if refund.unmatched_deposit_id:
        accounts = _accounts(refund, AccountKind.DEPOSITS, AccountKind.MERCHANT_RESERVED)
        journal_transaction_post(kind=Kind.REFUND_UNMATCHED_HOLD, source_type=SOURCE, source_id=refund.id,
                                 memo=refund.unmatched_deposit_id,
                                 postings=[Posting(accounts[AccountKind.DEPOSITS], amount),
                                           Posting(accounts[AccountKind.MERCHANT_RESERVED], -amount)])
        return
    accounts = _accounts(refund, AccountKind.MERCHANT_AVAILABLE, AccountKind.MERCHANT_RESERVED)
    available = accounts[AccountKind.MERCHANT_AVAILABLE]
    # Both running balances locked (balances_lock): two refunds or a refund and a payout of one merchant and asset
    # see each other's reservation, and never deadlock.
    owed = -balances_lock(available, accounts[AccountKind.MERCHANT_RESERVED])[available.id]
    if owed < amount:
        raise DomainError(code="balance_insufficient", param="amount",
                          message=f"The merchant's available balance ({owed} base units of "
                                  f"{refund.currency if refund.token_id is None else refund.token.currency}) is less "
                                  f"than this refund ({amount}).")
    journal_transaction_post(kind=Kind.REFUND_RESERVE, source_type=SOURCE, source_id=refund.id,
                             memo=refund.charge_id or "",
                             postings=[Posting(available, amount),
                                       Posting(accounts[AccountKind.MERCHANT_RESERVED], -amount)])


def _release(refund: Refund) -> None:
    """Undo `_reserve`: reserved back to available (or to deposits for an unmatched deposit)."""
    amount = refund.amount_base_units
    back = AccountKind.DEPOSITS if refund.unmatched_deposit_id else AccountKind.MERCHANT_AVAILABLE
    accounts = _accounts(refund, back, AccountKind.MERCHANT_RESERVED)
    journal_transaction_post(kind=Kind.REFUND_RELEASE, source_type=SOURCE, source_id=refund.id,
                             postings=[Posting(accounts[AccountKind.MERCHANT_RESERVED], amount),
                                       Posting(accounts[back], -amount)])


def _initial_status(destination_address: str) -> str:
    return Status.PENDING if destination_address else Status.REQUIRES_ACTION


def _announce(refund: Refund, ctx: RefundContext) -> None:
    _event(refund, "refund.created", ctx)
    if refund.status == Status.REQUIRES_ACTION and refund.receipt_email:
        transaction.on_commit(lambda: refund_claim_email_send(refund=refund))


@transaction.atomic
def refund_create(*, merchant, livemode: bool, charge: Charge, amount: int | None, reason: str = "",
                  metadata: dict | None = None, destination_address: str = "",
                  ctx: RefundContext = RefundContext()) -> Refund:
    """A refund of `amount` minor units (None: what is left) of a Charge of this merchant and mode. The Charge's
    row is locked first, so concurrent refunds of it see each other: the sum never passes the Charge's amount.
    The base units sent follow the Charge's own rate (amounts.py); the merchant's available balance must cover
    them. Refused while the merchant is frozen (`account_frozen`); held for approval above a limit."""
    _refuse_frozen(merchant.pk)
    charge = charge_lock_for_refund(charge_id=charge.pk)
    if charge.status != Charge.Status.SUCCEEDED:
        raise DomainError(code="charge_not_refundable", param="charge",
                          message=f"Charge {charge.id} was reversed on-chain: there is nothing to refund.")
    left = charge.amount - charge.amount_refunded
    if left <= 0:
        raise DomainError(code="charge_already_refunded", param="charge",
                          message=f"Charge {charge.id} has already been refunded.")
    amount = left if amount is None else amount
    if amount > left:
        raise DomainError(code="amount_too_large", param="amount",
                          message=f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left}).")
    active = Refund.objects.filter(charge=charge).exclude(status__in=[Status.FAILED, Status.CANCELED])
    base_units = refund_base_units(
        charge_amount=charge.amount, charge_base_units=charge_base_units(charge),
        refunded=charge.amount_refunded, refunded_base_units=int(active.aggregate(s=Sum("amount_base_units"))["s"] or 0),
        amount=amount)
    if base_units <= 0:
        raise DomainError(code="amount_too_small", param="amount",
                          message="This amount is worth less than one base unit of the token.")
    transfer = charge.transfer
    if transfer.network.livemode != livemode or charge.livemode != livemode or charge.merchant_id != merchant.pk:
        # the selectors scope the Charge to the caller already: this is the last guard that test keys move test money
        raise DomainError(code="resource_missing", param="charge", status_code=404,
                          message=f"No such charge: '{charge.id}'")
    refund = Refund(
        merchant=merchant, livemode=livemode, charge=charge, payment_intent_id=charge.payment_intent_id,
        network=transfer.network, token=transfer.token, amount=amount, currency=charge.currency,
        amount_base_units=base_units, reason=reason, metadata=metadata or {},
        status=_initial_status(destination_address), destination_address=destination_address,
        claim_token=random_token(43), receipt_email=charge.payment_intent.receipt_email,
    )
    _requested(refund, ctx, merchant)
    refund.save(force_insert=True)
    _reserve(refund)
    _hold_over_limits(refund, merchant)
    charge_refunded_change(charge=charge, delta_minor=amount, request_id=ctx.request_id,
                           idempotency_key=ctx.idempotency_key)
    _announce(refund, ctx)
    _audit(refund, "refund.create", ctx, after=_snapshot(refund))
    return refund


@transaction.atomic
def refund_create_for_deposit(*, deposit: UnmatchedDeposit, reason: str = "", description: str = "",
                              metadata: dict | None = None, destination_address: str = "",
                              ctx: RefundContext = RefundContext()) -> Refund:
    """Give back all of an unmatched deposit (late, over, wrong token, unknown intent), in its own token and network.
    A deposit is refunded once (a partial unique constraint; again after a failed or canceled refund). Refused while
    the merchant is frozen; held for approval above a limit."""
    _refuse_frozen(deposit.merchant_id)
    deposit = UnmatchedDeposit.objects.select_for_update(of=("self",)).select_related(
        "transfer__network", "transfer__token", "payment_intent").get(pk=deposit.pk)
    if Refund.objects.filter(unmatched_deposit=deposit).exclude(status__in=[Status.FAILED, Status.CANCELED]).exists():
        raise DomainError(code="charge_already_refunded", param="crypto[unmatched_deposit]",
                          message=f"Deposit {deposit.id} has already been refunded.")
    assignment = DepositAssignment.objects.filter(unmatched_deposit=deposit).first()
    if assignment is not None:
        raise DomainError(code="deposit_already_assigned", param="crypto[unmatched_deposit]",
                          message=f"Deposit {deposit.id} was assigned to {assignment.payment_intent_id}: it paid "
                                  "that intent, refund its charge instead.")
    transfer = deposit.transfer
    token = transfer.token
    if token is not None and token.pegged_currency:
        currency, amount = token.pegged_currency, _minor_value(transfer.amount_base_units, token.decimals)
    else:
        currency, amount = (token.currency if token else transfer.network.native_currency), 0
    refund = Refund(
        merchant_id=deposit.merchant_id, livemode=deposit.livemode, unmatched_deposit=deposit,
        payment_intent=deposit.payment_intent, network=transfer.network, token=token, amount=amount,
        currency=currency, amount_base_units=int(transfer.amount_base_units), reason=reason, description=description,
        metadata=metadata or {}, status=_initial_status(destination_address),
        destination_address=destination_address, claim_token=random_token(43),
        receipt_email=deposit.payment_intent.receipt_email if deposit.payment_intent else "",
    )
    merchant = Merchant.objects.get(pk=deposit.merchant_id)
    _requested(refund, ctx, merchant)
    refund.save(force_insert=True)
    unmatched_deposit_refund_mark(deposit_id=deposit.pk, refund_id=refund.id)
    _reserve(refund)
    _hold_over_limits(refund, merchant)
    _announce(refund, ctx)
    _audit(refund, "refund.create", ctx, after=_snapshot(refund))
    return refund


def _refuse_frozen(merchant_id: str) -> None:
    """Before anything is locked or written (the merchant's row FOR SHARE first: a freeze waits for this
    transaction, so no refund is created after a freeze took effect)."""
    if merchant_frozen(merchant_id=merchant_id):
        raise account_frozen_error(what="refund")


def _requested(refund: Refund, ctx: RefundContext, merchant) -> None:
    requester = money_out_requester(actor=ctx.actor, merchant=merchant)
    refund.requested_by_id, refund.requester = requester.user_id, requester.label


def refund_decimals(refund: Refund) -> int | None:
    """The decimals a refund's base units are measured in against the limits, or None when its token is not pegged
    to its currency (a native coin, an unpegged token: not measurable in fiat)."""
    token = refund.token
    if token is None or token.pegged_currency != refund.currency:
        return None
    return token.decimals


def _hold_over_limits(refund: Refund, merchant) -> None:
    """After the reservation locked the balance rows: above a limit, the refund waits for a staff approval."""
    reasons = money_out_hold_reasons(merchant=merchant, livemode=refund.livemode, currency=refund.currency,
                                     amount_base_units=refund.amount_base_units, decimals=refund_decimals(refund))
    if reasons:
        refund.awaiting_approval, refund.approval_reasons, refund.pending_reason = True, reasons, AWAITING_APPROVAL
        refund.save(update_fields=["awaiting_approval", "approval_reasons", "pending_reason", "updated"])


def _minor_value(base_units: int, decimals: int, exponent: int = 2) -> int:
    """What base units of a pegged token are worth in minor units, rounded down (shown only: nothing is converted
    back from it)."""
    return int(base_units) * 10**exponent // 10**decimals


def refund_claim_email_send(*, refund: Refund) -> None:
    """The claim link to the customer (receipt_email). After the commit; a mail error is logged, not raised: the
    merchant also has the link (`next_action.crypto_refund_claim.url`)."""
    try:
        send_mail(
            subject="A refund is waiting for you",
            message=(f"A refund of {refund.amount_base_units} base units of "
                     f"{refund.token.currency.upper() if refund.token else refund.network.native_currency.upper()} "
                     f"on {refund.network.display_name} is waiting for you.\n\nGive the address to send it to "
                     f"here:\n{claim_url(refund)}\n\nThis link is yours alone: do not share it."),
            from_email=None, recipient_list=[refund.receipt_email],
        )
    except Exception:  # noqa: BLE001 (a mail server problem must not fail the refund)
        logger.exception("the claim e-mail of refund %s could not be sent", refund.id)


# --- Update, claim, cancel ------------------------------------------------------------------------------------------


@transaction.atomic
def refund_update(*, refund: Refund, metadata: dict, clear_metadata: bool = False,
                  ctx: RefundContext = RefundContext()) -> Refund:
    """Stripe's update: metadata only (keys with "" are removed; "" for the whole field unsets every key)."""
    locked = Refund.objects.select_for_update().get(pk=refund.pk)
    previous = dict(locked.metadata)
    merged = metadata_merge(previous, metadata, clear=clear_metadata)
    if merged == previous:
        return locked
    locked.metadata = merged
    locked.save(update_fields=["metadata", "updated"])
    _event(locked, "refund.updated", ctx, previous_attributes={"metadata": previous})
    _audit(locked, "refund.update", ctx, before={"metadata": previous}, after={"metadata": merged})
    return locked


@transaction.atomic
def refund_claim(*, refund: Refund, destination_address: str, request=None) -> Refund:
    """The customer's address (checked by the claim form): requires_action -> pending. Recorded as the customer
    (with the request's IP)."""
    claimed = refund_transition(refund=refund, to=Status.PENDING, destination_address=destination_address)
    audit_record(actor="customer", action="refund.claim", obj=claimed,
                 before={"status": Status.REQUIRES_ACTION, "destination_address": ""},
                 after={"status": claimed.status, "destination_address": destination_address}, request=request)
    return claimed


@transaction.atomic
def refund_cancel(*, refund: Refund, ctx: RefundContext = RefundContext()) -> Refund:
    """Cancel a refund while nothing was sent (requires_action, or pending without an outgoing transaction): the
    reservation goes back and the Charge's amount_refunded with it."""
    locked = (Refund.objects.select_for_update(of=("self",)).select_related("charge", "network", "token")
              .get(pk=refund.pk))
    if locked.status in CLOSED or locked.outgoing_transaction_id is not None:
        raise RefundTransitionError(refund=locked, action="cancel")
    before = {"status": locked.status}
    canceled = refund_cancel_held(refund=locked, ctx=ctx)
    _audit(canceled, "refund.cancel", ctx, before=before, after={"status": canceled.status})
    return canceled


def refund_cancel_held(*, refund: Refund, ctx: RefundContext = RefundContext()) -> Refund:
    """The cancellation itself, in the caller's transaction, `refund` locked by it (nothing sent yet): the
    reservation and the Charge's amount_refunded given back, `canceled` with `refund.updated` (the merchant's cancel,
    a staff rejection of a held refund)."""
    if refund.status in CLOSED or refund.outgoing_transaction_id is not None:
        raise RefundTransitionError(refund=refund, action="cancel")
    _give_back(refund, ctx)
    return refund_transition(refund=refund, to=Status.CANCELED, ctx=ctx, pending_reason="", awaiting_approval=False)


def refund_event(refund: Refund, type: str, *, previous: dict | None = None) -> None:
    _event(refund, type, RefundContext(), previous_attributes=previous)


def refunds_wake() -> None:
    task_wake("settlements.tasks.advance_refunds")


def _lock_source(refund: Refund) -> Charge | None:
    """Lock what the refund gives back before any ledger balance (the order of refund_create): the Charge, or the
    unmatched deposit, whose refund mark is cleared (it may be assigned to an intent again)."""
    if refund.charge_id:
        return charge_lock_for_refund(charge_id=refund.charge_id)
    unmatched_deposit_refund_mark(deposit_id=refund.unmatched_deposit_id, refund_id="")
    return None


def _give_back(refund: Refund, ctx: RefundContext) -> None:
    charge = _lock_source(refund)
    _release(refund)
    if charge is not None:
        charge_refunded_change(charge=charge, delta_minor=-refund.amount, request_id=ctx.request_id,
                               idempotency_key=ctx.idempotency_key)


# --- Send and settle (the beat task, `manage.py refunds send`) -----------------------------------------------------


def refund_approval_required(*, refund: Refund) -> bool:
    """Held by a limit (set when it was created, settlements.limits) until staff approve it
    (settlements.approvals)."""
    return refund.awaiting_approval


def _wait(refund: Refund, reason: str) -> Refund:
    """Keep a pending refund waiting; a new reason is recorded (and announced by `refund.updated`) once."""
    if refund.pending_reason != reason:
        previous = refund.pending_reason
        refund.pending_reason = reason
        refund.save(update_fields=["pending_reason", "updated"])
        _event(refund, "refund.updated", RefundContext(), previous_attributes={"pending_reason": previous or None})
    return refund


def _transfer_call(refund: Refund) -> tuple[str, int, bytes, int]:
    """(to, value, data, gas limit) of the send: an ERC-20 transfer from the hot wallet, or a native value."""
    if refund.token_id is None:
        return refund.destination_address, refund.amount_base_units, b"", NATIVE_GAS
    data = (TRANSFER_SELECTOR + bytes.fromhex(refund.destination_address[2:].rjust(64, "0"))
            + int(refund.amount_base_units).to_bytes(32, "big"))
    return refund.token.contract_address, 0, data, settings.GATEWAY_REFUND_TOKEN_GAS_LIMIT


def refund_send(*, refund_id: str, client_for=rpc_client_or_none) -> Refund | None:
    """Send one pending refund that has an address and no transaction yet: in ONE database transaction, the
    OutgoingTransaction (purpose refund, source_reference its id: it can never pay twice) and the ledger's
    Dr in_transit, Cr hot_wallet. Waits instead (pending, with `pending_reason`) when approval is needed, the
    network has no hot wallet, or the ledger's hot wallet (net of every send in flight) holds too little (logged:
    the floor alert). None when another process holds it or there is nothing to do."""
    with transaction.atomic():
        refund = (Refund.objects.select_for_update(skip_locked=True, of=("self",))
                  .select_related("network", "token", "merchant")
                  .filter(pk=refund_id, status=Status.PENDING, outgoing_transaction__isnull=True)
                  .exclude(destination_address="").first())
        if refund is None:
            return None
        if refund_approval_required(refund=refund):
            return _wait(refund, AWAITING_APPROVAL)
        if merchant_frozen(merchant_id=refund.merchant_id):
            # Held while the account is frozen (its row read FOR SHARE: a freeze waits for this transaction); sent by
            # the first run after the unfreeze.
            return _wait(refund, ACCOUNT_FROZEN)
        if address_is_blocked(refund.destination_address):
            if refund.pending_reason != DESTINATION_BLOCKED:
                logger.warning("refund %s held: its destination %s is on the blocklist", refund.id,
                               refund.destination_address)
            return _wait(refund, DESTINATION_BLOCKED)
        # The sending address first, then the balances in account id order (as payout_send and every sender that
        # records a send and posts it in one transaction): none of them deadlock, and each sees the others' sends.
        hot = SendingAddress.objects.select_for_update().filter(network=refund.network,
                                                                purpose=SendingAddress.Purpose.HOT).first()
        if hot is None or client_for(refund.network) is None:
            return _wait(refund, HOT_WALLET_MISSING)
        accounts = _accounts(refund, AccountKind.IN_TRANSIT)
        hot_account = ledger_account_get(kind=AccountKind.HOT_WALLET, network_id=refund.network_id,
                                         token_id=refund.token_id, address=hot.address,
                                         livemode=refund.network.livemode)
        held = balances_lock(hot_account, accounts[AccountKind.IN_TRANSIT])[hot_account.id]
        if held < refund.amount_base_units:  # the ledger's hot wallet: net of every feature's sends in flight
            logger.warning("hot wallet floor: %s on %s holds %s base units of %s in the ledger, refund %s needs %s",
                           hot.address, refund.network.code, held,
                           refund.token.currency if refund.token else "native", refund.id, refund.amount_base_units)
            return _wait(refund, HOT_WALLET_INSUFFICIENT)
        to, value, data, gas = _transfer_call(refund)
        tx = outgoing_transaction_create(network=refund.network, to_address=to, value_base_units=value, data=data,
                                         gas_limit=gas, purpose=PURPOSE, source_reference=refund.id)
        journal_transaction_post(kind=Kind.REFUND_SEND, source_type=SOURCE, source_id=refund.id, memo=str(tx.pk),
                                 postings=[Posting(accounts[AccountKind.IN_TRANSIT], refund.amount_base_units),
                                           Posting(hot_account, -refund.amount_base_units)])
        refund.outgoing_transaction = tx
        refund.pending_reason = ""
        refund.save(update_fields=["outgoing_transaction", "pending_reason", "updated"])
        return refund


def refund_settle(*, refund_id: str) -> Refund | None:
    """Apply the end of a refund's outgoing transaction: final -> succeeded (Dr merchant_reserved, Cr in_transit);
    failed (reverted) or cancelled -> the send reversed (Dr hot_wallet, Cr in_transit), the reservation released,
    the Charge's amount_refunded given back, `refund.failed`. None when it is not ended yet (or held elsewhere)."""
    with transaction.atomic():
        refund = (Refund.objects.select_for_update(skip_locked=True, of=("self",))
                  .select_related("network", "token", "merchant", "outgoing_transaction")
                  .filter(pk=refund_id, status=Status.PENDING, outgoing_transaction__isnull=False).first())
        if refund is None:
            return None
        tx = refund.outgoing_transaction
        amount = refund.amount_base_units
        if tx.status == OutStatus.FINAL:
            accounts = _accounts(refund, AccountKind.MERCHANT_RESERVED, AccountKind.IN_TRANSIT)
            journal_transaction_post(kind=Kind.REFUND_SETTLE, source_type=SOURCE, source_id=refund.id,
                                     postings=[Posting(accounts[AccountKind.MERCHANT_RESERVED], amount),
                                               Posting(accounts[AccountKind.IN_TRANSIT], -amount)])
            return refund_transition(refund=refund, to=Status.SUCCEEDED)
        if tx.status in (OutStatus.FAILED, OutStatus.CANCELLED):
            _lock_source(refund)  # before the balances the reversal posts to
            accounts = _accounts(refund, AccountKind.IN_TRANSIT)
            hot_account = ledger_account_get(kind=AccountKind.HOT_WALLET, network_id=refund.network_id,
                                             token_id=refund.token_id, address=tx.from_address,
                                             livemode=refund.network.livemode)
            journal_transaction_post(kind=Kind.REFUND_SEND_REVERSAL, source_type=SOURCE, source_id=refund.id,
                                     postings=[Posting(hot_account, amount),
                                               Posting(accounts[AccountKind.IN_TRANSIT], -amount)])
            _give_back(refund, RefundContext())
            reason = "transaction_reverted" if tx.status == OutStatus.FAILED else "transaction_cancelled"
            return refund_transition(refund=refund, to=Status.FAILED, event_type="refund.failed",
                                     failure_reason=reason)
        return None


@dataclass
class AdvanceSummary:
    sent: int = 0
    waiting: int = 0
    succeeded: int = 0
    failed: int = 0

    def as_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


def refunds_advance(*, limit: int = 200, client_for=rpc_client_or_none) -> AdvanceSummary:
    """One pass (beat task, `manage.py refunds send`): send the pending refunds that can go, settle the ones whose
    transaction ended. One database transaction per refund; safe to run twice, concurrently, and to be killed."""
    summary = AdvanceSummary()
    # Those already waiting for a reason (frozen merchant, blocked destination, hot wallet short) go after the fresh
    # ones: a pile of held refunds never fills the batch and starves the others.
    to_send = list(Refund.objects.filter(status=Status.PENDING, outgoing_transaction__isnull=True,
                                         awaiting_approval=False)
                   .exclude(destination_address="")
                   .order_by(Case(When(pending_reason="", then=0), default=1), "created")
                   .values_list("id", flat=True)[:limit])
    for refund_id in to_send:
        try:
            refund = refund_send(refund_id=refund_id, client_for=client_for)
        except Exception:
            logger.exception("sending refund %s failed; left for the next run", refund_id)
            continue
        if refund is not None:
            if refund.outgoing_transaction_id:
                summary.sent += 1
            else:
                summary.waiting += 1
    ended = list(Refund.objects.filter(status=Status.PENDING, outgoing_transaction__status__in=[
        OutStatus.FINAL, OutStatus.FAILED, OutStatus.CANCELLED]).order_by("created").values_list("id", flat=True)[:limit])
    for refund_id in ended:
        refund = refund_settle(refund_id=refund_id)
        if refund is not None:
            if refund.status == Status.SUCCEEDED:
                summary.succeeded += 1
            else:
                summary.failed += 1
    return summary
