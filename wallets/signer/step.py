"""The signer's step of the transaction manager (docs/money-out.md), run by the `signer` queue's workers only: take a
transaction that waits for a signature (queued, or stuck and to be replaced), sign it through the signer boundary
(`wallets.signer.signer()`), and store the attempt (raw bytes, hash, fees) and its `signed` status in one database
transaction. Everything that signs lives in this package; the manager (wallets/outgoing/services.py) keeps the state
machine, the stored attempts and the broadcasting, and never holds a key."""
import logging
import time

from django.db import transaction

from gateway.celery import task_wake
from gateway.errors import ConfigurationError
from wallets import signer as signer_boundary
from wallets.outgoing.fees import Fees, fees_capped, fees_highest, fees_market, fees_replacement
from wallets.outgoing.models import OutgoingAttempt, OutgoingTransaction
from wallets.outgoing.services import (CANCEL_GAS, OPEN_FOR_SIGNER, SEND_TASK, Status, attempt_fees,
                                       outgoing_transaction_transition, replacement_ceiling)

logger = logging.getLogger(__name__)


def _next_to_sign(*, exclude_ids) -> OutgoingTransaction | None:
    return (OutgoingTransaction.objects.filter(status__in=OPEN_FOR_SIGNER).exclude(pk__in=exclude_ids)
            .select_related("network").order_by("id").first())


def _sign_one(candidate: OutgoingTransaction, *, client_for) -> OutgoingTransaction | None:
    """Sign `candidate` and store the attempt, or None when another signer holds it or it no longer waits. The
    market's fees are read BEFORE the row is locked: no row lock is held across that RPC call."""
    client = client_for(candidate.network)
    market = fees_market(client=client, tx_type=candidate.tx_type)
    authority_nonces = _authority_nonces(candidate, client=client)
    with transaction.atomic():
        tx = (OutgoingTransaction.objects.select_for_update(skip_locked=True, of=("self",))
              .select_related("network", "sending_address")
              .filter(pk=candidate.pk, status__in=OPEN_FOR_SIGNER).first())
        if tx is None:
            return None
        attempts = list(tx.attempts.all())
        if attempts:  # outbid the HIGHEST fees any attempt of this nonce offered (the current one may be older)
            fees = fees_replacement(previous=fees_highest([attempt_fees(a) for a in attempts]), market=market,
                                    ceiling=replacement_ceiling(tx, attempts))
        else:
            fees = fees_capped(market, max_fee_per_gas=tx.network.max_fee_per_gas_wei)
        kind = (OutgoingAttempt.Kind.CANCEL if tx.cancel_requested
                else OutgoingAttempt.Kind.BUMP if attempts else OutgoingAttempt.Kind.ORIGINAL)
        if tx.authorizations_to_sign and not tx.authorization_list and kind != OutgoingAttempt.Kind.CANCEL:
            _authorizations_sign(tx, nonces=authority_nonces)
        payload = _payload(tx, fees=fees, cancel=kind == OutgoingAttempt.Kind.CANCEL)
        signed = signer_boundary.signer().sign(payload, key_ref=tx.sending_address.key_ref)
        if signed.sender != tx.from_address:
            raise ConfigurationError(code="signer_key_mismatch",
                                     message=f"The signer's key {tx.sending_address.key_ref} signs for {signed.sender}, "
                                             f"not for the sending address {tx.from_address}.")
        attempt = OutgoingAttempt.objects.create(
            transaction=tx, number=max((a.number for a in attempts), default=0) + 1, kind=kind,
            tx_hash=signed.tx_hash, raw_transaction=signed.raw, gas_price=fees.gas_price,
            max_fee_per_gas=fees.max_fee_per_gas, max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        )
        outgoing_transaction_transition(tx=tx, to=Status.SIGNED, attempt=attempt, current_attempt=attempt,
                                        detail={"kind": kind, "tx_hash": signed.tx_hash, **fees.as_json()})
        transaction.on_commit(lambda: task_wake(SEND_TASK))
    return tx


def _authority_nonces(tx: OutgoingTransaction, *, client) -> dict[str, int]:
    """{authority: its nonce on chain} for the EIP-7702 authorizations `tx` still has to sign (read before any row
    lock). An authorization carries the authority's nonce: a deposit address never sends, so it is its nonce now."""
    if not tx.authorizations_to_sign or tx.authorization_list:
        return {}
    authorities = [a["authority"] for a in tx.authorizations_to_sign]
    answers = client.batch([("eth_getTransactionCount", [a, "pending"]) for a in authorities])
    return {a: int(n, 16) for a, n in zip(authorities, answers)}


def _authorizations_sign(tx: OutgoingTransaction, *, nonces: dict[str, int]) -> None:
    """Sign the transaction's EIP-7702 authorizations ONCE (before its first attempt) and keep the signed tuples in
    its row, in the caller's database transaction: every attempt of the nonce (bumps, a rebroadcast after a reorg)
    carries the same tuples. Each signature is checked to be the authority's."""
    signed = []
    for wanted in tx.authorizations_to_sign:
        authority = wanted["authority"].lower()
        if authority not in nonces:
            raise ConfigurationError(code="authorization_nonce_missing",
                                     message=f"No nonce read for the authority {authority} of transaction {tx.pk}.")
        auth = signer_boundary.signer().sign_authorization(
            key_ref=wanted["key_ref"], chain_id=tx.network.chain_id, address=wanted["delegate"],
            nonce=nonces[authority])
        if signer_boundary.signer().address(wanted["key_ref"]) != authority:
            raise ConfigurationError(code="signer_key_mismatch",
                                     message=f"The signer's key {wanted['key_ref']} is not the key of {authority}.")
        signed.append(auth.as_json())
    tx.authorization_list = signed
    OutgoingTransaction.objects.filter(pk=tx.pk).update(authorization_list=signed)


def outgoing_transaction_sign_next(*, client_for=None, exclude_ids=frozenset()) -> OutgoingTransaction | None:
    """Sign one transaction that waits for a signature (queued, or stuck and to be replaced), store the attempt
    (raw bytes, hash, fees) and mark it `signed`, in one database transaction. None when nothing waits. A
    replacement outbids the highest fees of the nonce's attempts (cut to the network's ceiling, `fees.py`) and is
    numbered after the highest attempt number.

    `client_for(network)` gives the RPC client the fees are read from (default: the network's)."""
    from wallets.chain.rpc import RpcClient

    client_for = client_for or RpcClient.for_network
    skipped = set(exclude_ids)
    while (candidate := _next_to_sign(exclude_ids=skipped)) is not None:
        signed = _sign_one(candidate, client_for=client_for)
        if signed is not None:
            return signed
        skipped.add(candidate.pk)  # taken by another signer meanwhile
    return None


def outgoing_transactions_sign(*, budget_seconds: float, client_for=None) -> int:
    """Sign what waits, one database transaction each, for `budget_seconds` at most (the `signer` task). A row
    that fails is logged and skipped for this run: it never holds up the others. Returns how many were signed."""
    from wallets.chain.rpc import RpcClient

    client_for = client_for or RpcClient.for_network
    started, signed, skipped = time.monotonic(), 0, set()
    while time.monotonic() - started < budget_seconds:
        candidate = _next_to_sign(exclude_ids=skipped)
        if candidate is None:
            break
        try:
            done = _sign_one(candidate, client_for=client_for)
        except Exception:
            logger.exception("signing outgoing transaction %s failed; skipped in this run", candidate.pk)
            done = None
        if done is None:
            skipped.add(candidate.pk)
        else:
            signed += 1
    return signed


def _payload(tx: OutgoingTransaction, *, fees: Fees, cancel: bool) -> dict:
    tx_type = tx.tx_type
    if cancel:  # the same nonce spent on nothing: 0 to itself, no data, no authorizations
        if tx_type == OutgoingTransaction.Type.EIP7702:
            tx_type = OutgoingTransaction.Type.EIP1559
        body = {"to": tx.from_address, "value": 0, "data": b"", "gas": CANCEL_GAS}
    else:
        body = {"to": tx.to_address, "value": int(tx.value_base_units), "data": bytes(tx.data), "gas": tx.gas_limit}
    if not body["to"]:
        del body["to"]  # a contract creation
    payload = {"chainId": tx.network.chain_id, "nonce": tx.nonce, **body, **fees.as_tx_fields()}
    if tx_type != OutgoingTransaction.Type.LEGACY:
        payload["type"] = tx_type
    if tx_type == OutgoingTransaction.Type.EIP7702:
        payload["authorizationList"] = list(tx.authorization_list)
    return payload
