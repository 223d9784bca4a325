"""The transaction manager (docs/money-out.md): every write of outgoing transactions.

    outgoing_transaction_create   any process, no key: allocate the nonce, store the transaction `queued`
    (signing: wallets/signer/step.py, the `signer` queue only: sign one queued (or stuck) transaction and store the
     attempt's raw bytes and hash (`signed`) in one database transaction, through outgoing_transaction_transition)
    outgoing_transactions_process the `chain` queue, no key: broadcast stored bytes, follow receipts to finality,
                                  rebroadcast dropped and reorged ones, ask for a replacement of stuck ones
    outgoing_transaction_cancel   ask the signer to replace a pending transaction by a 0-value send to itself

Every status change goes through `outgoing_transaction_transition`, which writes the event row in the same database
transaction. Nothing is broadcast that is not stored first, and a nonce comes from the database only, so a process
killed at any line leaves either nothing (rolled back) or stored bytes that the next run broadcasts again.
"""
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from gateway.celery import task_wake
from gateway.errors import ConfigurationError, DomainError
from wallets import signer as signer_boundary
from wallets.chain.finality import final_block_number
from wallets.chain.rpc import RpcError, RpcUnavailable
from wallets.models import Network

from .fees import Fees, fees_bumped, fees_ceiling, fees_highest, fees_within
from .models import OutgoingAttempt, OutgoingTransaction, OutgoingTransactionEvent, SendingAddress

logger = logging.getLogger(__name__)

Status = OutgoingTransaction.Status
SIGN_TASK = "wallets.tasks.sign_outgoing_transactions"
SEND_TASK = "wallets.tasks.send_outgoing_transactions"
CANCEL_GAS = 21_000

# The state machine: from-status -> the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.QUEUED: frozenset({Status.SIGNED, Status.REPLACING}),  # replacing: cancelled before it was signed
    Status.SIGNED: frozenset({Status.BROADCAST, Status.MINED, Status.REPLACING}),
    Status.BROADCAST: frozenset({Status.MINED, Status.DROPPED, Status.REPLACING}),
    Status.REPLACING: frozenset({Status.SIGNED, Status.MINED}),
    Status.DROPPED: frozenset({Status.BROADCAST, Status.MINED, Status.REPLACING}),
    Status.MINED: frozenset({Status.FINAL, Status.FAILED, Status.CANCELLED, Status.REORGED}),
    Status.REORGED: frozenset({Status.BROADCAST, Status.MINED, Status.REPLACING}),
    Status.FINAL: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}
OPEN_FOR_SENDER = (Status.SIGNED, Status.BROADCAST, Status.DROPPED, Status.MINED, Status.REORGED, Status.REPLACING)
OPEN_FOR_SIGNER = (Status.QUEUED, Status.REPLACING)
NOT_MINED = (Status.QUEUED, Status.SIGNED, Status.BROADCAST, Status.REPLACING, Status.DROPPED, Status.REORGED)
FEE_CEILING = "fee ceiling"


class OutgoingTransitionError(DomainError):
    def __init__(self, *, tx: OutgoingTransaction, to: str):
        super().__init__(code="outgoing_transaction_unexpected_state", status_code=409,
                         message=f"Outgoing transaction {tx.pk} is {tx.status}; it cannot become {to}.")


def _wake(task_name: str) -> None:
    task_wake(task_name)


@transaction.atomic
def outgoing_transaction_transition(*, tx: OutgoingTransaction, to: str, attempt: OutgoingAttempt | None = None,
                                    detail: dict | None = None, **fields) -> OutgoingTransaction:
    """The one way a status changes: lock the row, check the move is allowed from the status it has NOW, save the
    given fields with it, and write the event, all in one transaction. Refuses (raises) any other move."""
    locked = OutgoingTransaction.objects.select_for_update().get(pk=tx.pk)
    if to not in TRANSITIONS[locked.status]:
        raise OutgoingTransitionError(tx=locked, to=to)
    from_status = locked.status
    locked.status = to
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=["status", "updated", *fields])
    OutgoingTransactionEvent.objects.create(transaction=locked, from_status=from_status, to_status=to,
                                            attempt=attempt, detail=detail or {})
    tx.status = to
    for name, value in fields.items():
        setattr(tx, name, value)
    return tx


# --- Sending addresses -----------------------------------------------------------------------------------------


def sending_address_register(*, network: Network, client, purpose: str = SendingAddress.Purpose.HOT
                             ) -> SendingAddress:
    """The network's sending address for `purpose` (the hot wallet: m/44'/60'/1'/0/<chain id>), created once with the
    node's pending nonce as the start of its sequence. Needs the signer (its address comes from the key), so it
    runs where the signer runs: `manage.py hot_wallet`, or the signer's own tests. Idempotent."""
    existing = SendingAddress.objects.filter(network=network, purpose=purpose).first()
    if existing is not None:
        return existing
    key_ref = signer_boundary.hot_wallet_key_ref(chain_id=network.chain_id)
    address = signer_boundary.signer().address(key_ref)
    next_nonce = int(client.call("eth_getTransactionCount", [address, "pending"]), 16)
    try:
        with transaction.atomic():
            return SendingAddress.objects.create(network=network, purpose=purpose, address=address, key_ref=key_ref,
                                                 next_nonce=next_nonce)
    except IntegrityError:  # registered concurrently
        return SendingAddress.objects.get(network=network, purpose=purpose)


# --- Create (any process) ----------------------------------------------------------------------------------------


def outgoing_transaction_create(*, network: Network, to_address: str, gas_limit: int, purpose: str,
                                value_base_units: int = 0, data: bytes = b"", source_reference: str = "",
                                from_purpose: str = SendingAddress.Purpose.HOT,
                                authorization_list: list[dict] | None = None,
                                authorizations_to_sign: list[dict] | None = None,
                                sending_address: SendingAddress | None = None) -> OutgoingTransaction:
    """Allocate the next nonce of the network's sending address and store the transaction `queued`, unsigned, in
    one database transaction (the caller's, when it has one: a rollback gives the nonce back, so the sequence never
    has a gap). The signer picks it up on the `signer` queue after the commit.

    The type follows the network: 2 (EIP-1559), or 0 where it uses legacy gas prices; 4 with an authorization list
    (signed EIP-7702 tuples, `SignedAuthorization.as_json()`). (purpose, source_reference) is unique when given: the
    same cause never gets two transactions. `authorizations_to_sign` ([{key_ref, authority, delegate}]) makes it a
    type 4 whose authorizations the SIGNER signs before its first attempt (no key here). `to_address=""` creates a
    contract. `sending_address` sends from that row instead of the network's `from_purpose` one (a deposit address
    of the non-7702 sweep fallback)."""
    if authorization_list or authorizations_to_sign:
        if network.fee_model == "legacy":
            raise DomainError(code="parameter_invalid", param="authorization_list",
                              message=f"{network.code} uses legacy gas prices: no EIP-7702 transactions there.")
        tx_type = OutgoingTransaction.Type.EIP7702
    else:
        tx_type = OutgoingTransaction.Type.LEGACY if network.fee_model == "legacy" else OutgoingTransaction.Type.EIP1559
    with transaction.atomic():
        sending = (SendingAddress.objects.select_for_update().filter(pk=sending_address.pk).first()
                   if sending_address is not None else
                   SendingAddress.objects.select_for_update().filter(network=network, purpose=from_purpose).first())
        if sending is None:
            raise ConfigurationError(
                code="sending_address_missing",
                message=f"{network.code} has no {from_purpose} sending address: run "
                        f"`manage.py hot_wallet --network {network.code}` where the signer runs.",
            )
        try:
            with transaction.atomic():
                tx = OutgoingTransaction.objects.create(
                    network=network, sending_address=sending, from_address=sending.address, nonce=sending.next_nonce,
                    to_address=to_address.lower(), value_base_units=value_base_units, data=bytes(data),
                    gas_limit=gas_limit, tx_type=tx_type, authorization_list=list(authorization_list or []),
                    authorizations_to_sign=list(authorizations_to_sign or []),
                    purpose=purpose, source_reference=source_reference,
                )
        except IntegrityError:
            raise DomainError(code="outgoing_transaction_exists", param="source_reference", status_code=409,
                              message=f"A {purpose} transaction for {source_reference} already exists.") from None
        SendingAddress.objects.filter(pk=sending.pk).update(next_nonce=F("next_nonce") + 1)
        OutgoingTransactionEvent.objects.create(transaction=tx, from_status="", to_status=Status.QUEUED)
        transaction.on_commit(lambda: _wake(SIGN_TASK))
    return tx


@transaction.atomic
def outgoing_transaction_cancel(*, tx: OutgoingTransaction) -> OutgoingTransaction:
    """Ask for the transaction's nonce to be used by a 0-value send to itself, with a bumped fee (the signer signs
    it). Once that is final the transaction is `cancelled`; if the original is mined first, it stands. A `queued`
    transaction (nonce allocated, nothing signed) is cancelled the same way, at the market's fees: its nonce is
    still used, so the later nonces of the address are not stuck behind a gap."""
    locked = OutgoingTransaction.objects.select_for_update().get(pk=tx.pk)
    if locked.status not in (Status.QUEUED, Status.SIGNED, Status.BROADCAST, Status.DROPPED):
        raise OutgoingTransitionError(tx=locked, to=Status.REPLACING)
    result = outgoing_transaction_transition(tx=locked, to=Status.REPLACING, cancel_requested=True,
                                             detail={"reason": "cancel"})
    transaction.on_commit(lambda: _wake(SIGN_TASK))
    return result


# --- Fees of attempts (the signer's step, wallets/signer/step.py, and the sender's replacements) ------------------


def attempt_fees(attempt: OutgoingAttempt) -> Fees:
    return Fees(gas_price=attempt.gas_price, max_fee_per_gas=attempt.max_fee_per_gas,
                max_priority_fee_per_gas=attempt.max_priority_fee_per_gas)


def replacement_ceiling(tx: OutgoingTransaction, attempts: list[OutgoingAttempt]) -> Fees:
    """The most a replacement of `tx` may offer (its network's rule, from the first attempt's fees)."""
    first = min(attempts, key=lambda a: a.number)
    return fees_ceiling(first=attempt_fees(first), multiple=tx.network.max_fee_multiple,
                        max_fee_per_gas=tx.network.max_fee_per_gas_wei)


# --- Broadcast and follow (the `chain` queue; no key) --------------------------------------------------------------


@dataclass
class ProcessSummary:
    broadcast: int = 0
    mined: int = 0
    final: int = 0
    failed: int = 0
    dropped: int = 0
    reorged: int = 0
    replacing: int = 0
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


_KNOWN_TEXTS = ("already known", "already imported", "known transaction", "already exists")
# The node refuses the fees (below the base fee or its minimum, or under a transaction of ours it holds): re-sign.
_UNDERPRICED_TEXTS = ("base fee", "underpriced", "fee too low", "gas price too low", "gasprice too low",
                      "max fee per gas less than", "transaction fee cap")


def outgoing_transactions_process(*, network: Network, client, now: datetime | None = None) -> ProcessSummary:
    """One pass over the network's open transactions, each in its own database transaction under its row lock
    (SKIP LOCKED: two senders never work on one row): broadcast what is signed, dropped or reorged; record receipts
    (`mined`, with gas); move what is final under the network's finality rule to `final`, `failed` (reverted) or
    `cancelled`; mark what waited longer than `network.tx_replace_seconds` for replacement."""
    summary = ProcessSummary()
    head = client.block_number()
    final = final_block_number(network=network, client=client, head=head)
    ids = list(OutgoingTransaction.objects.filter(network=network, status__in=OPEN_FOR_SENDER)
               .order_by("from_address", "nonce").values_list("id", flat=True))
    for tx_id in ids:
        try:
            with transaction.atomic():
                tx = (OutgoingTransaction.objects.select_for_update(skip_locked=True, of=("self",))
                      .select_related("network", "current_attempt", "mined_attempt")
                      .filter(pk=tx_id, status__in=OPEN_FOR_SENDER).first())
                if tx is not None:
                    _advance(tx, client=client, final=final, now=now or timezone.now(), summary=summary)
        except (RpcUnavailable, RpcError) as exc:
            summary.errors.append(f"{tx_id}: {exc}")
            logger.warning("outgoing transaction %s: %s", tx_id, exc)
        except Exception as exc:  # one bad row is skipped for this run (rolled back); it never stops the others
            summary.errors.append(f"{tx_id}: {exc!r}")
            logger.exception("outgoing transaction %s failed; skipped in this run", tx_id)
    return summary


def _advance(tx: OutgoingTransaction, *, client, final: int, now: datetime, summary: ProcessSummary) -> None:
    if tx.status in (Status.SIGNED, Status.DROPPED, Status.REORGED):
        _broadcast(tx, client=client, now=now, summary=summary)
    elif tx.status == Status.BROADCAST:
        if _mined(tx, client=client, summary=summary):
            return
        current = tx.current_attempt
        if client.call("eth_getTransactionByHash", [current.tx_hash]) is None:
            outgoing_transaction_transition(tx=tx, to=Status.DROPPED, attempt=current)
            summary.dropped += 1
            _broadcast(tx, client=client, now=now, summary=summary)
        elif ((since := _pending_since(tx)) and now - since >= timedelta(seconds=tx.network.tx_replace_seconds)
              and not _lower_nonce_unmined(tx) and _may_replace(tx)):
            outgoing_transaction_transition(tx=tx, to=Status.REPLACING, attempt=current,
                                            detail={"reason": "not mined", "waited_seconds":
                                                    int((now - since).total_seconds())})
            summary.replacing += 1
            transaction.on_commit(lambda: _wake(SIGN_TASK))
    elif tx.status == Status.REPLACING:
        _mined(tx, client=client, summary=summary)  # an attempt may still be mined while the signer replaces it
    elif tx.status == Status.MINED:
        receipt = client.call("eth_getTransactionReceipt", [tx.mined_attempt.tx_hash])
        if receipt is None or receipt.get("blockHash") != tx.block_hash:
            outgoing_transaction_transition(tx=tx, to=Status.REORGED, attempt=tx.mined_attempt,
                                            detail={"block_number": tx.block_number, "block_hash": tx.block_hash},
                                            current_attempt=tx.mined_attempt)
            summary.reorged += 1
            _broadcast(tx, client=client, now=now, summary=summary)
        elif tx.block_number <= final:
            if tx.mined_attempt.kind == OutgoingAttempt.Kind.CANCEL:
                to = Status.CANCELLED
            else:
                to = Status.FINAL if tx.receipt_status == 1 else Status.FAILED
            outgoing_transaction_transition(tx=tx, to=to, attempt=tx.mined_attempt,
                                            detail={"final_block": final})
            if to == Status.FAILED:
                summary.failed += 1
            else:
                summary.final += 1


def _broadcast(tx: OutgoingTransaction, *, client, now: datetime, summary: ProcessSummary) -> None:
    """eth_sendRawTransaction of the stored bytes of the current attempt (never anything else). A node that knows it
    already is a success; "nonce too low" means some attempt of ours (or a stranger) used the nonce: the receipts
    tell which."""
    attempt = tx.current_attempt
    try:
        client.call("eth_sendRawTransaction", ["0x" + bytes(attempt.raw_transaction).hex()])
    except RpcError as exc:
        text = exc.message.lower()
        if "nonce too low" in text or "nonce is too low" in text:
            if not _mined(tx, client=client, summary=summary):
                logger.error("outgoing transaction %s: nonce %s used by a transaction not ours", tx.pk, tx.nonce)
            return
        if any(underpriced in text for underpriced in _UNDERPRICED_TEXTS):
            if not _may_replace(tx):
                return  # at the fee ceiling: sent again at the next pass (the node takes it when fees fall)
            outgoing_transaction_transition(tx=tx, to=Status.REPLACING, attempt=attempt,
                                            detail={"reason": "refused by the node", "error": exc.message[:200]})
            summary.replacing += 1
            transaction.on_commit(lambda: _wake(SIGN_TASK))
            return
        if not any(known in text for known in _KNOWN_TEXTS):
            raise
    outgoing_transaction_transition(tx=tx, to=Status.BROADCAST, attempt=attempt, last_broadcast_at=now,
                                    detail={"tx_hash": attempt.tx_hash})
    summary.broadcast += 1


def _mined(tx: OutgoingTransaction, *, client, summary: ProcessSummary) -> bool:
    """Record the receipt of whichever attempt of `tx` the chain holds (`mined`); False when none is mined."""
    attempts = list(tx.attempts.order_by("-number"))
    if not attempts:  # a queued transaction being cancelled: nothing signed yet
        return False
    receipts = client.batch([("eth_getTransactionReceipt", [a.tx_hash]) for a in attempts])
    for attempt, receipt in zip(attempts, receipts):
        if receipt:
            status = int(receipt["status"], 16)
            gas_used = int(receipt["gasUsed"], 16)
            price = int(receipt.get("effectiveGasPrice") or "0x0", 16)
            outgoing_transaction_transition(
                tx=tx, to=Status.MINED, attempt=attempt, mined_attempt=attempt, current_attempt=attempt,
                block_number=int(receipt["blockNumber"], 16), block_hash=receipt["blockHash"], receipt_status=status,
                gas_used=gas_used, effective_gas_price=price,
                detail={"tx_hash": attempt.tx_hash, "block_number": int(receipt["blockNumber"], 16),
                        "status": status, "gas_used": gas_used, "effective_gas_price": str(price)},
            )
            summary.mined += 1
            return True
    return False


def _pending_since(tx: OutgoingTransaction) -> datetime | None:
    """Since when `tx` waits for a block on its own account: its last broadcast, or the moment the nonce before it
    was mined if later (a nonce waiting behind an earlier one is not stuck itself)."""
    previous_mined = (OutgoingTransactionEvent.objects
                      .filter(transaction__network_id=tx.network_id, transaction__from_address=tx.from_address,
                              transaction__nonce=tx.nonce - 1, to_status=Status.MINED)
                      .order_by("-id").values_list("created", flat=True).first())
    return max(filter(None, (tx.last_broadcast_at, previous_mined)), default=None)


def _lower_nonce_unmined(tx: OutgoingTransaction) -> bool:
    """True when an earlier nonce of the same address is not mined: only the LOWEST open nonce of an address is
    replaced; the later ones wait behind it (bumping them would raise fees on the whole hot wallet for nothing)."""
    return OutgoingTransaction.objects.filter(network_id=tx.network_id, from_address=tx.from_address,
                                              nonce__lt=tx.nonce, status__in=NOT_MINED).exists()


def _may_replace(tx: OutgoingTransaction) -> bool:
    """True when the lowest replacement of `tx` (every field bumped over the highest attempt) stays within the
    network's fee ceiling. Otherwise the transaction waits: an event is recorded (once per latest attempt) and a
    warning logged."""
    attempts = list(tx.attempts.order_by("number"))
    if not attempts:
        return True
    ceiling = replacement_ceiling(tx, attempts)
    bumped = fees_bumped(fees_highest([attempt_fees(a) for a in attempts]))
    if fees_within(bumped, ceiling):
        return True
    latest = attempts[-1]
    if not OutgoingTransactionEvent.objects.filter(transaction=tx, attempt=latest, detail__reason=FEE_CEILING).exists():
        OutgoingTransactionEvent.objects.create(
            transaction=tx, from_status=tx.status, to_status=tx.status, attempt=latest,
            detail={"reason": FEE_CEILING, "next_bump": bumped.as_json(), "ceiling": ceiling.as_json()})
        logger.warning("outgoing transaction %s (nonce %s of %s) is at its fee ceiling %s: not replaced, it waits",
                       tx.pk, tx.nonce, tx.from_address, ceiling.as_json())
    return False
