"""What funds on-chain mean for payment intents. The chain watcher (wallets) records transfers as facts and queues
an AddressActivity row; `address_activity_process` turns each address's facts into intent states, Charges,
unmatched deposits and events. The state is derived from the facts every time, so applying twice changes nothing
and a crash at any line leaves either the old state with its queue row or the new state without it."""
import logging
import math
from fractions import Fraction

from django.db import transaction
from django.db.models import Q
from django.utils.timezone import now

from audit.services import audit_batch, audit_record, model_snapshot
from gateway.metrics import DEPOSITS_HELD, PAYMENT_BLOCK_TO_STATUS, PAYMENT_SUCCEEDED_AMOUNT, PAYMENT_TRANSITIONS
from wallets import activity
from wallets.alerts import staff_email
from wallets.models import AddressActivity, BlockedAddress, ChainCursor, Transfer

from . import notifications, services
from .events import event_record
from .ledger_outbox import charge_ledger_fact_record
from .models import (Charge, ChargeDust, ChargeLedgerOutbox, DepositAssignment, HeldDeposit, PaymentIntent,
                     UnmatchedDeposit)
from .presenters import charge_json, payment_intent_json, unmatched_deposit_json
from .pricing import FIAT_EXPONENTS

logger = logging.getLogger(__name__)
Status = PaymentIntent.Status
Reason = UnmatchedDeposit.Reason


def _pays(intent: PaymentIntent, value: Fraction) -> bool:
    """Whether `value` (exact, in minor units) pays the intent: short by at most the merchant's tolerance."""
    bps = min(intent.merchant.underpayment_tolerance_bps, 10_000)
    return value * 10_000 >= intent.amount * (10_000 - bps)


def _unmatched_reason(intent: PaymentIntent | None, transfer: Transfer, accepted_token_ids: set[int]) -> str | None:
    if intent is None:
        return Reason.NO_OPEN_INTENT
    if transfer.network.livemode != intent.livemode:
        return Reason.OTHER_MODE
    if transfer.network.api_name not in intent.networks:
        return Reason.OTHER_NETWORK
    if transfer.token_id is None or transfer.token_id not in accepted_token_ids:
        return Reason.UNSUPPORTED_TOKEN
    return None


def _value(transfers: list[Transfer], currency: str) -> Fraction:
    """The exact worth of stablecoin transfers in minor units of `currency` (a rational: no rounding at all)."""
    exponent = FIAT_EXPONENTS[currency]
    return sum((Fraction(t.amount_base_units * 10**exponent, 10**t.token.decimals) for t in transfers), Fraction(0))


def _event(intent: PaymentIntent, type: str, **kwargs) -> None:
    event_record(merchant=intent.merchant, livemode=intent.livemode, type=type, obj_id=intent.id,
                 snapshot=payment_intent_json(intent), **kwargs)


def _move(intent: PaymentIntent, to: str, event_type: str) -> None:
    previous = intent.status
    intent.status = to
    if previous == Status.CANCELED:  # a late payment the merchant accepts reopens the expired intent
        intent.cancellation_reason = ""
        intent.canceled_at = None
    intent.save(update_fields=["status", "amount_received", "amount_seen", "latest_charge", "cancellation_reason",
                               "canceled_at", "updated"])
    _event(intent, event_type, previous_attributes={"status": previous})


def _observe(intent: PaymentIntent, status: str, live: list[Transfer], *, reversed: bool = False) -> None:
    """The Prometheus side of a transition (gateway.metrics), once the transaction commits: the seconds since the
    scanner recorded the intent's first live transfer, the transition, and a success's amount."""
    first = min(live, key=lambda t: t.seen_at, default=None)
    network = first.network.code if first is not None else ""
    amount = Fraction(intent.amount, 10 ** FIAT_EXPONENTS[intent.currency])

    def observe():
        PAYMENT_TRANSITIONS.labels("reversed" if reversed else status).inc()
        if reversed:
            return
        if first is not None:
            PAYMENT_BLOCK_TO_STATUS.labels(network, status).observe(max(0.0, (now() - first.seen_at).total_seconds()))
        if status == Status.SUCCEEDED:
            PAYMENT_SUCCEEDED_AMOUNT.labels(intent.currency).observe(int(amount))  # minor units

    transaction.on_commit(observe)


def _record_unmatched(*, address, intent, transfer: Transfer, reason: str) -> None:
    if UnmatchedDeposit.objects.filter(
        transfer__network_id=transfer.network_id, transfer__tx_hash=transfer.tx_hash,
        transfer__log_index=transfer.log_index,
    ).exclude(transfer=transfer).exists():
        # The same on-chain transfer, recorded again after its block was orphaned and came back (a new Transfer
        # row): already announced once; a second deposit would have the merchant refund it twice.
        return
    deposit, created = UnmatchedDeposit.objects.get_or_create(
        transfer=transfer,
        defaults=dict(merchant_id=address.merchant_id, livemode=transfer.network.livemode, payment_intent=intent,
                      reason=reason),
    )
    if created:
        deposit.transfer = transfer
        event_record(merchant=address.merchant, livemode=deposit.livemode, type="crypto.deposit.unmatched",
                     obj_id=deposit.id, snapshot=unmatched_deposit_json(deposit), sequence=1)


HOLD_FIELDS = ["status", "decided_at", "decided_by", "decision_reason"]
CARRY_ACTOR = "task:address_apply"  # the audit actor of a decision carried over to a reorg's new row (the system)


def _held(*, address, intent: PaymentIntent | None, transfers: list[Transfer], settled: set[int]) -> set[int]:
    """The transfers of this apply held for review (HeldDeposit held or kept): never credited, never unmatched.
    A live transfer not credited or announced yet (not in `settled`) whose sender is on the active blocklist is held
    here, once: its HeldDeposit row is written now, logged, counted and emailed to staff. A transfer credited before
    its sender was blocked stays credited; a released hold counts by the normal rules.

    A reorg that re-mines a held transfer in a new block gives it a new row (wallets.Transfer): its hold carries the
    decision made on the old row's (`_hold_carry`), whatever the blocklist says now, so a released deposit is not held
    again and a kept one is not credited because its sender left the list meanwhile. Every row of one on-chain
    transfer is a transfer of this address (the same recipient), so the old holds are among `holds`."""
    ids = [t.id for t in transfers]
    holds = {h.transfer_id: h for h in HeldDeposit.objects.filter(transfer_id__in=ids)}
    status = {transfer_id: h.status for transfer_id, h in holds.items()}
    fresh = [t for t in transfers if t.id not in status and t.id not in settled and t.orphaned_at is None]
    if fresh:
        earlier: dict[tuple, list[HeldDeposit]] = {}
        for t in transfers:
            if t.id in holds:
                earlier.setdefault((t.network_id, t.tx_hash, t.log_index), []).append(holds[t.id])
        blocked = {b.address: b for b in BlockedAddress.objects.filter(
            address__in={t.from_address for t in fresh}, active=True)}
        for transfer in fresh:
            same = earlier.get((transfer.network_id, transfer.tx_hash, transfer.log_index))
            if same:
                status[transfer.id] = _hold_carry(intent=intent, transfer=transfer, earlier=same)
                continue
            entry = blocked.get(transfer.from_address)
            if entry is None:
                continue
            status[transfer.id] = _hold(address=address, intent=intent, transfer=transfer, entry=entry)
    return {transfer_id for transfer_id, s in status.items() if s != HeldDeposit.Status.RELEASED}


def _hold_carry(*, intent: PaymentIntent | None, transfer: Transfer, earlier: list[HeldDeposit]) -> str:
    """The hold of a transfer recorded again after a reorg, with the decision of its latest decided hold (or held, as
    they are, if none is decided: staff were told once). A decision carried over is audited here, by the system, in
    the apply's transaction; a release then counts at once by the normal rules (the caller's apply)."""
    source = max(earlier, key=lambda h: (h.decided_at is not None, h.decided_at or h.created, h.created))
    hold = HeldDeposit.objects.create(
        merchant_id=source.merchant_id, livemode=source.livemode, payment_intent=intent, transfer=transfer,
        from_address=transfer.from_address, blocked_reason=source.blocked_reason, status=source.status,
        decided_at=source.decided_at, decided_by=source.decided_by, decision_reason=source.decision_reason,
    )
    if hold.status != HeldDeposit.Status.HELD:
        audit_record(actor=CARRY_ACTOR, action="held_deposit.carry_over", obj=hold,
                     after={**model_snapshot(hold, HOLD_FIELDS), "transfer": transfer.id, "carried_from": source.id},
                     reason=f"the same on-chain transfer recorded again after a reorg: {source.id} was {source.status}")
    return hold.status


def _hold(*, address, intent: PaymentIntent | None, transfer: Transfer, entry: BlockedAddress) -> str:
    hold = HeldDeposit.objects.create(
        merchant_id=address.merchant_id, livemode=transfer.network.livemode, payment_intent=intent,
        transfer=transfer, from_address=transfer.from_address,
        blocked_reason=f"{entry.source} {entry.list_reference}: {entry.reason}".strip()[:2000],
    )
    network = transfer.network.code
    what = (f"{transfer.amount_base_units} base units of {transfer.token.currency if transfer.token_id else 'native'}"
            f" from blocked {transfer.from_address} to {address.address} on {network} (tx {transfer.tx_hash})")
    logger.warning("deposit held %s: %s; intent %s", hold.id, what, intent.id if intent else None)

    def report():
        DEPOSITS_HELD.labels(network).inc()
        staff_email(subject=f"deposit held from a blocked address: {hold.id}",
                    message=f"{what}, merchant {address.merchant_id}, intent {intent.id if intent else '-'}.\n"
                            f"Blocklist entry: {hold.blocked_reason}\n\nNot credited, not swept. Decide in admin: "
                            f"Payments > Held deposits, Release (credited by the normal rules) or Keep.")

    transaction.on_commit(report)
    return hold.status


def _credit(intent: PaymentIntent, transfer: Transfer, amount: int, dust: list[Transfer]) -> Charge | None:
    """The Charge of a final transfer, worth `amount` minor units (see `_credit_final`). It carries the uncarried
    `dust` before it in the same token (taken off the list): its ledger credit posts their base units with its own."""
    if amount <= 0:
        # Dust (less than one minor unit): it still counts, exactly, in what the intent has received, but a Charge of
        # 0 with its `charge.succeeded` would look like a payment to a merchant who ships on that event.
        return None
    charge, created = Charge.objects.get_or_create(
        transfer=transfer,
        defaults=dict(
            merchant=intent.merchant, livemode=intent.livemode, payment_intent=intent, currency=intent.currency,
            amount=amount,
        ),
    )
    if not created:
        return None
    charge.transfer = transfer
    carried = [t for t in dust if t.token_id == transfer.token_id]
    ChargeDust.objects.bulk_create(ChargeDust(charge=charge, transfer=t) for t in carried)
    dust[:] = [t for t in dust if t.token_id != transfer.token_id]
    event_record(merchant=intent.merchant, livemode=intent.livemode, type="charge.succeeded", obj_id=charge.id,
                 snapshot=charge_json(charge), sequence=1)
    charge_ledger_fact_record(charge=charge, kind=ChargeLedgerOutbox.Kind.CREDIT)
    return charge


def _charged(final: list[Transfer], charges: dict[int, Charge]) -> int:
    """What the succeeded Charges of these final transfers carry, in minor units."""
    return sum(charges[t.id].amount for t in final
               if t.id in charges and charges[t.id].status == Charge.Status.SUCCEEDED)


def _credit_final(intent: PaymentIntent, final: list[Transfer], charges: dict[int, Charge],
                  carried: dict[int, ChargeDust]) -> None:
    """A Charge for every final transfer that has none. Each new one is worth what its transfer adds to the
    rounded-down total of the transfers already charged and the new ones before it (in chain order), so the intent's
    Charges add up exactly to its `amount_received`: two transfers of 5.005 make Charges of 500 and 501 cents, and
    dust counts once it adds up to a cent. Charges made earlier are never recomputed, whatever the order in which
    transfers (on several chains) became final. (The one exception: a final block undone by a reorg deeper than the
    finality rule reverses its Charge, and what the others carried of its fraction of a cent stays with them.)
    Dust (a transfer that adds no minor unit) gets no Charge: the next Charge in its token carries it (`ChargeDust`),
    so its base units reach the ledger with that Charge's credit, exactly once."""
    cumulative = _value([t for t in final if t.id in charges or t.id in carried], intent.currency)
    charged = _charged(final, charges)
    dust: list[Transfer] = []
    for transfer in final:
        if transfer.id in charges or transfer.id in carried:  # credited already (carried dust: by a Charge after it)
            continue
        cumulative += _value([transfer], intent.currency)
        charge = _credit(intent, transfer, math.floor(cumulative) - charged, dust)
        if charge is not None:
            intent.latest_charge = charge
            charged += charge.amount
        else:
            dust.append(transfer)


def _reverse_charge(charge: Charge) -> None:
    charge.status = Charge.Status.REVERSED
    charge.save(update_fields=["status"])
    event_record(merchant=charge.merchant, livemode=charge.livemode, type="charge.reversed", obj_id=charge.id,
                 snapshot=charge_json(charge), previous_attributes={"status": Charge.Status.SUCCEEDED})
    charge_ledger_fact_record(charge=charge, kind=ChargeLedgerOutbox.Kind.REVERSAL)


def _reverse_dust(dust: ChargeDust) -> None:
    """A carried dust transfer left the chain while its Charge stands: the Charge keeps its amount (as it keeps the
    fraction of a cent of any other orphaned transfer), the ledger takes back the dust's base units."""
    dust.reversed = True
    dust.save(update_fields=["reversed"])
    charge_ledger_fact_record(charge=dust.charge, kind=ChargeLedgerOutbox.Kind.DUST_REVERSAL, dust=dust)


def address_apply(*, deposit_address_id: int) -> PaymentIntent | None:
    """Bring the intent of one address (and its charges, unmatched deposits, events) in line with the transfers
    recorded for it. Call inside a transaction."""
    address = activity.deposit_address_lock(deposit_address_id=deposit_address_id)
    intent = (
        PaymentIntent.objects.select_for_update(of=("self",)).select_related("merchant")  # the intent row only
        .filter(deposit_address_id=deposit_address_id).first()
    )
    transfers = activity.transfers_of_address(deposit_address_id=deposit_address_id)
    # Unmatched deposits staff assigned to this intent (payments.corrections) count as its own transfers.
    assigned = [a.transfer for a in DepositAssignment.objects.filter(payment_intent=intent)
                .select_related("transfer__network", "transfer__token")] if intent else []
    if assigned:
        transfers = sorted(transfers + assigned, key=lambda t: (t.block_number, t.log_index, t.id))
    assigned_ids = [t.id for t in assigned]
    # And the other way: transfers of this address staff assigned to another intent are that intent's; whatever
    # happens to them here (a reorg) is handed on to its address.
    handed = list(DepositAssignment.objects.filter(transfer__deposit_address_id=deposit_address_id)
                  .exclude(payment_intent_id=intent.id if intent else None)
                  .values_list("transfer_id", "payment_intent__deposit_address_id"))
    if handed:
        AddressActivity.objects.bulk_create(AddressActivity(deposit_address_id=a) for a in {a for _, a in handed})
    mine = ((Q(transfer__deposit_address_id=deposit_address_id) & ~Q(transfer_id__in=[t for t, _ in handed]))
            | Q(transfer_id__in=assigned_ids))
    accepted = set(intent.options.values_list("token_id", flat=True)) if intent else set()
    charges = {c.transfer_id: c for c in Charge.objects.filter(mine)}
    dust_rows = list(ChargeDust.objects.filter(mine).select_related("charge"))
    # A transfer announced as an unmatched deposit (funds that came after the intent closed) stays one: crediting it
    # later too (a late remainder that completes an intent whose merchant accepts late payments) would count it twice.
    unmatched = set(UnmatchedDeposit.objects.filter(transfer__deposit_address_id=deposit_address_id)
                    .values_list("transfer_id", flat=True)) - set(assigned_ids)

    # Transfers from a blocked sender (wallets.BlockedAddress) are held for review: not credited, not unmatched.
    held = _held(address=address, intent=intent, transfers=transfers,
                 settled=set(charges) | {d.transfer_id for d in dust_rows} | unmatched | set(assigned_ids))

    matched: list[Transfer] = []
    for transfer in transfers:
        if transfer.id in held:
            continue
        reason = _unmatched_reason(intent, transfer, accepted)
        if reason is None and transfer.id in unmatched:
            continue
        if reason is None:
            matched.append(transfer)
        elif transfer.is_final:
            _record_unmatched(address=address, intent=intent, transfer=transfer, reason=reason)
    if intent is None:
        return None

    live = [t for t in matched if t.orphaned_at is None]
    final = [t for t in live if t.finalized_at is not None]
    seen, received = _value(live, intent.currency), _value(final, intent.currency)
    closed = intent.status == Status.CANCELED
    accepts_late = (
        intent.merchant.accept_late_payments and intent.cancellation_reason == PaymentIntent.CancellationReason.EXPIRED
    )

    # A credited transfer whose block left the chain: its Charge is reversed, whatever the intent's state.
    for transfer in matched:
        charge = charges.get(transfer.id)
        if charge is not None and transfer.orphaned_at is not None and charge.status == Charge.Status.SUCCEEDED:
            _reverse_charge(charge)
    # The dust carried by a succeeded Charge (after the reversals above: a reversed Charge took back its dust too,
    # which is free to be carried again). Dust whose block left the chain while its Charge stands is taken back.
    carried = {d.transfer_id: d for d in dust_rows if charges[d.charge.transfer_id].status == Charge.Status.SUCCEEDED}
    for transfer in matched:
        dust = carried.get(transfer.id)
        if dust is not None and transfer.orphaned_at is not None and not dust.reversed:
            _reverse_dust(dust)

    if closed and (not accepts_late or not _pays(intent, seen)):
        # Funds after the intent closed (or, when the merchant accepts late payments, a late payment that does not
        # pay in full): recorded, the intent stays canceled. A transfer credited before it closed keeps its Charge
        # and is not also an unmatched deposit (that would count it twice).
        for transfer in final:
            if transfer.id not in charges and transfer.id not in carried:  # carried dust is credited already
                _record_unmatched(address=address, intent=intent, transfer=transfer, reason=Reason.INTENT_CLOSED)
        credited = _charged(final, charges)
        if credited != intent.amount_received:  # a credited transfer was orphaned after the intent closed
            intent.amount_received = credited
            intent.save(update_fields=["amount_received", "updated"])
        return intent

    _credit_final(intent, final, charges, carried)

    # Stripe's amount fields are integers: what the customer paid, rounded down to the minor unit.
    grew = math.floor(seen) > intent.amount_seen
    shrank = math.floor(seen) < intent.amount_seen
    intent.amount_seen = math.floor(seen)
    intent.amount_received = math.floor(received)
    target = (
        Status.SUCCEEDED if _pays(intent, received)
        else Status.PROCESSING if _pays(intent, seen)
        else Status.REQUIRES_ACTION
    )
    current = intent.status
    if target == current:
        intent.save(update_fields=["amount_received", "amount_seen", "latest_charge", "updated"])
        if target == Status.REQUIRES_ACTION and grew:
            _event(intent, "payment_intent.partially_funded")
        elif target == Status.REQUIRES_ACTION and shrank:
            # A reorg took away part of a short payment that was announced (partially_funded): say so.
            _event(intent, "payment_intent.reversed")
    elif target == Status.SUCCEEDED:
        if current in (Status.REQUIRES_ACTION, Status.CANCELED):
            _move(intent, Status.PROCESSING, "payment_intent.processing")
            _observe(intent, Status.PROCESSING, live)
        _move(intent, Status.SUCCEEDED, "payment_intent.succeeded")
        notifications.payment_succeeded_enqueue(intent)  # the merchant's email, after commit (when it wants one)
        _observe(intent, Status.SUCCEEDED, live)
    elif target == Status.PROCESSING:
        if current == Status.SUCCEEDED:
            _move(intent, Status.PROCESSING, "payment_intent.reversed")
            _observe(intent, Status.PROCESSING, live, reversed=True)
        else:
            _move(intent, Status.PROCESSING, "payment_intent.processing")
            _observe(intent, Status.PROCESSING, live)
    else:  # back to waiting: a reorg took funds away (or late funds vanished)
        if current == Status.CANCELED:
            intent.save(update_fields=["amount_received", "amount_seen", "latest_charge", "updated"])
        else:
            _move(intent, Status.REQUIRES_ACTION, "payment_intent.reversed")
            _observe(intent, Status.REQUIRES_ACTION, live, reversed=True)
            if seen and grew:
                _event(intent, "payment_intent.partially_funded")
    return intent


def address_activity_process(*, limit: int = 200) -> int:
    """Consume the queue in batches (one transaction a batch, a savepoint an address). An address whose apply
    fails keeps its rows for the next run and does not hold up the others. Returns the addresses applied. The
    batch's audit records (a hold's decision carried over a reorg) are appended at its end (audit_batch), after its
    last row lock: the audit chain's head is never held while the batch waits for an address a staff action holds."""
    done = 0
    failed: set[int] = set()
    while True:
        with transaction.atomic(), audit_batch():
            claimed = activity.address_activity_claim(limit=limit, exclude_ids=failed)
            if not claimed:
                return done
            for address_id, row_ids in claimed.items():
                try:
                    with transaction.atomic():
                        address_apply(deposit_address_id=address_id)
                        activity.address_activity_complete(row_ids=row_ids)
                except Exception:
                    logger.exception("applying the transfers of deposit address %s failed", address_id)
                    failed.update(row_ids)
                    continue
                done += 1


def _watched_past(intent: PaymentIntent, moment) -> bool:
    """Whether every chain the intent can be paid on has been scanned up to its head by a step that ended after
    `moment` (a chain that no scanner has ever watched has nothing to wait for)."""
    network_ids = set(intent.options.values_list("token__network_id", flat=True))
    for cursor in ChainCursor.objects.filter(network_id__in=network_ids):
        if cursor.updated < moment or cursor.head_number > cursor.block_number:
            return False
    return True


@transaction.atomic
def payment_intent_expire_checked(*, intent_id: str) -> PaymentIntent | None:
    """Expire an intent whose time is up, but never before what the chain holds has been applied to it: a payment
    mined before the deadline and not yet scanned (a scanner behind after an RPC outage) or not yet applied (its queue
    row waiting) would otherwise become an unmatched `intent_closed` deposit. Applies the address's transfers first
    (same lock order as the payments side: address, then intent), then expires only if the intent is still open and
    every chain of the intent has been scanned to its head after the deadline; else leaves it for the next run."""
    intent = PaymentIntent.objects.filter(pk=intent_id).only("id", "deposit_address_id", "expires_at").first()
    if intent is None or intent.expires_at is None:
        return None
    if intent.deposit_address_id is not None:
        # The cursor is read BEFORE the transfers: a scanner step commits its transfers and the cursor together, so
        # the transfers read after a cursor that passed the deadline include every one that step recorded. Read the
        # other way round, a step committing between the two reads turned a payment made in time into a late one
        # (tests/payments/test_expiry_race.py).
        watched = _watched_past(intent, intent.expires_at)
        address_apply(deposit_address_id=intent.deposit_address_id)
        if not watched:
            logger.info("not expiring %s yet: a chain of it has not been scanned past its deadline", intent_id)
            return None
    return services.payment_intent_expire(intent_id=intent_id)
