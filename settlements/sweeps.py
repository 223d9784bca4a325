"""Sweeps: the tokens credited at the deposit addresses go to the network's hot wallet (docs/money-out.md, "Sweeps").

    sweeper_deploy        the hot wallet deploys the network's Sweeper (contracts/Sweeper.sol) through the manager
    sweep_plan            (read) what the next batch of one network x token would be, and why not when none
    sweep_batch_create    records a batch: Sweep + items, the outgoing transaction(s), the wallets-level
                          OutgoingTransfer facts and the ledger's `sweep_send`, in ONE database transaction
    sweeps_settle         each sweep whose transaction(s) ended: what the receipts moved goes to the hot wallet's
                          account, the rest back to deposits; items closed; one transition
    sweeps_run            the beat task's pass over the active networks: settle, then create batches

No key anywhere here: the authorizations of first-time deposit addresses are signed by the signer (the `signer`
queue) before it signs the transaction (`authorizations_to_sign`). Every function is safe to run twice and to be
killed at any line: a batch exists whole (nonce, facts, postings) or not at all, an address is never in two open
sweeps (a partial unique index), and a sweep is settled once (its transition and the ledger's unique source keys).
"""
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, Min, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.services import audit_record, model_snapshot
from gateway.errors import ConfigurationError, DomainError
from gateway.fields import BaseUnitsField
from payments.models import Charge, ChargeDust
from wallets import sweeper
from wallets.models import (DepositAddress, Network, OutgoingTransaction, OutgoingTransfer, SendingAddress, Token,
                            Transfer)
from wallets.outgoing.services import outgoing_transaction_create
from wallets.signer import deposit_key_ref

from .models import AccountKind, JournalTransaction, Sweep, SweepEvent, SweepItem, SweepPolicy
from .services import Posting, journal_transaction_post, ledger_account_get

logger = logging.getLogger(__name__)

SWEEP = "sweep"  # journal source_type and OutgoingTransaction.purpose
DEPLOY = "sweeper_deploy"
Status = Sweep.Status
TxStatus = OutgoingTransaction.Status
ENDED = (TxStatus.FINAL, TxStatus.FAILED, TxStatus.CANCELLED)
SKIPPED_RETRY_SECONDS = 3600  # an address its last sweep skipped (token blacklist, reverting token) waits this long
TRANSITIONS = {Status.SENT: frozenset({Status.SETTLED, Status.FAILED}), Status.SETTLED: frozenset(),
               Status.FAILED: frozenset()}


class SweepError(DomainError):
    def __init__(self, *, code: str, message: str):
        super().__init__(code=code, message=message, status_code=409)


# --- The contract -----------------------------------------------------------------------------------------------


def sweeper_deploy(*, network: Network, actor=None) -> str:
    """Queue the deployment of the network's Sweeper by its hot wallet (its address fixed in the bytecode) and
    record the contract's address (CREATE of the hot wallet at that nonce) on the network, in one transaction, with
    its audit record (`actor`). Idempotent: a network that has one keeps it. Sweeps wait until its code is on chain."""
    with transaction.atomic():
        locked = Network.objects.select_for_update().get(pk=network.pk)
        if locked.sweeper_address:
            return locked.sweeper_address
        hot = SendingAddress.objects.filter(network=network, purpose=SendingAddress.Purpose.HOT).first()
        if hot is None:
            raise ConfigurationError(code="sending_address_missing",
                                     message=f"{network.code} has no hot wallet: run `manage.py hot_wallet "
                                             f"--network {network.code}` where the signer runs.")
        tx = outgoing_transaction_create(network=locked, to_address="", gas_limit=1_500_000, purpose=DEPLOY,
                                         data=sweeper.sweeper_deploy_data(hot_wallet=hot.address),
                                         source_reference=f"{network.code}:{hot.address}")
        locked.sweeper_address = sweeper.create_address(tx.from_address, tx.nonce)
        locked.save(update_fields=["sweeper_address"])
        audit_record(actor=actor, action="network.sweeper_deploy", obj=locked, before={"sweeper_address": ""},
                     after={"sweeper_address": locked.sweeper_address, "outgoing_transaction": tx.pk,
                            "hot_wallet": hot.address})
    network.sweeper_address = locked.sweeper_address
    return locked.sweeper_address


@transaction.atomic
def sweep_policy_set(*, token: Token, min_amount_base_units: int, batch_window_seconds: int, max_batch_size: int,
                     max_gas_price_wei: int | None = None, is_active: bool = True, actor=None) -> SweepPolicy:
    """Create or replace the sweep policy of one token (the admin edits the same row), with its audit record. Bounds
    are the model's: a value out of them is refused with the field named, nothing written."""
    policy = SweepPolicy.objects.select_for_update().filter(network_id=token.network_id, token=token).first()
    before = model_snapshot(policy) if policy else None
    policy = policy or SweepPolicy(network_id=token.network_id, token=token)
    policy.min_amount_base_units, policy.batch_window_seconds = min_amount_base_units, batch_window_seconds
    policy.max_batch_size, policy.max_gas_price_wei, policy.is_active = max_batch_size, max_gas_price_wei, is_active
    try:
        policy.full_clean(exclude=["network", "token"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DomainError(code="parameter_invalid", param=field, message=" ".join(messages)) from None
    policy.save()
    audit_record(actor=actor, action="sweep_policy.set", obj=policy, before=before, after=model_snapshot(policy))
    return policy


# --- What to sweep ----------------------------------------------------------------------------------------------


@dataclass
class PlannedItem:
    deposit_address: DepositAddress
    amount_base_units: int
    since: datetime  # when its oldest unswept credit became final
    authorize: bool = False  # not delegated to the sweeper yet: its first sweep carries its authorization
    nonce: int | None = None  # top-up method: the address's nonce on chain (for its first own transaction)


@dataclass
class SweepPlan:
    network: Network
    token: Token
    policy: SweepPolicy | None
    method: str = Sweep.Method.EIP7702
    items: list[PlannedItem] = field(default_factory=list)
    waiting: str = ""  # why no batch is sent now (empty: send it)
    gas_price_wei: int | None = None

    @property
    def amount_base_units(self) -> int:
        return sum(item.amount_base_units for item in self.items)

    def describe(self) -> str:
        head = (f"{self.network.code} {self.token.currency}: {len(self.items)} address(es), "
                f"{self.amount_base_units} base units, method {self.method}")
        if self.waiting:
            return f"{head}: not now ({self.waiting})"
        firsts = sum(item.authorize for item in self.items)
        return f"{head}, {firsts} first sweep(s) with a 7702 authorization: would send"


def _credited_transfers(token: Token):
    """The final, live transfers of `token` whose base units the ledger's `deposits` holds: a succeeded Charge's own
    transfer once its credit is posted, and live dust such a Charge carries."""
    credit_posted = JournalTransaction.objects.filter(source_type="charge", source_id=OuterRef("charge__id"),
                                                      kind=JournalTransaction.Kind.CHARGE_CREDIT)
    carried = ChargeDust.objects.filter(
        transfer=OuterRef("pk"), reversed=False, charge__status=Charge.Status.SUCCEEDED,
        charge__id__in=JournalTransaction.objects.filter(
            source_type="charge", kind=JournalTransaction.Kind.CHARGE_CREDIT).values("source_id"))
    return Transfer.objects.filter(token=token, finalized_at__isnull=False, orphaned_at__isnull=True).filter(
        Q(charge__status=Charge.Status.SUCCEEDED) & Exists(credit_posted) | Exists(carried))


def sweep_balances(*, token: Token, deposit_address_ids=None) -> dict[int, tuple[int, datetime]]:
    """{deposit address id: (base units of `token` credited there and not swept or in flight, since when)} for the
    addresses with no open sweep. What a sweep asked for counts until it settles, then what it moved."""
    credited = _credited_transfers(token)
    if deposit_address_ids is not None:
        credited = credited.filter(deposit_address_id__in=deposit_address_ids)
    open_items = SweepItem.objects.filter(open=True).values("deposit_address_id")
    rows = (credited.exclude(deposit_address_id__in=open_items).values("deposit_address_id")
            .annotate(total=Sum("amount_base_units"), since=Min("finalized_at")))
    totals = {row["deposit_address_id"]: (int(row["total"]), row["since"]) for row in rows}
    swept = (SweepItem.objects.filter(sweep__token=token, deposit_address_id__in=list(totals))
             .values("deposit_address_id")
             .annotate(done=Sum(Coalesce("swept_base_units", "amount_base_units", output_field=BaseUnitsField()))))
    for row in swept:
        total, since = totals[row["deposit_address_id"]]
        totals[row["deposit_address_id"]] = (total - int(row["done"] or 0), since)
    return {address_id: value for address_id, value in totals.items() if value[0] > 0}


def sweep_cooling_down(*, token: Token, deposit_address_ids, now: datetime) -> set[int]:
    """The addresses whose latest sweep of `token` skipped them (moved less than asked: the token blacklisted the
    address, or reverts) less than SKIPPED_RETRY_SECONDS ago, and where no credit became final since that sweep was
    sent: offered again at once they would only burn gas again."""
    latest = (SweepItem.objects.filter(sweep__token=token, deposit_address_id__in=list(deposit_address_ids), open=False)
              .order_by("deposit_address_id", "-id").distinct("deposit_address_id")
              .values("deposit_address_id", "amount_base_units", "swept_base_units", "sweep__created",
                      "sweep__updated"))
    skipped = {row["deposit_address_id"]: row["sweep__created"] for row in latest
               if (row["swept_base_units"] or 0) < row["amount_base_units"]
               and now - row["sweep__updated"] < timedelta(seconds=SKIPPED_RETRY_SECONDS)}
    if not skipped:
        return set()
    newest = dict(_credited_transfers(token).filter(deposit_address_id__in=list(skipped))
                  .values("deposit_address_id").annotate(last=Max("finalized_at"))
                  .values_list("deposit_address_id", "last"))
    return {address_id for address_id, sent in skipped.items()
            if newest.get(address_id) is None or newest[address_id] <= sent}


def sweeps_by_delegation(network: Network) -> bool:
    """EIP-7702 batches need the chain's 7702 (`Network.eip7702`) and EIP-1559 fees (the manager signs type 4 only
    there): a legacy-fee network (BSC, as the manager runs it) uses the top-up fallback."""
    return network.eip7702 and network.fee_model != "legacy"


def sweep_plan(*, network: Network, token: Token, client, now: datetime | None = None) -> SweepPlan:
    """The next batch of `token` on `network` under its policy (a read; the chain is asked for the gas price, the
    Sweeper's code and which addresses are delegated already)."""
    now = now or timezone.now()
    policy = SweepPolicy.objects.filter(network=network, token=token, is_active=True).first()
    plan = SweepPlan(network=network, token=token, policy=policy,
                     method=Sweep.Method.EIP7702 if sweeps_by_delegation(network) else Sweep.Method.TOPUP)
    if policy is None:
        plan.waiting = "no active sweep policy"
        return plan
    balances = sweep_balances(token=token)
    cooling = sweep_cooling_down(token=token, deposit_address_ids=balances, now=now)
    ready = sorted(((address_id, amount, since) for address_id, (amount, since) in balances.items()
                    if amount >= max(policy.min_amount_base_units, 1) and address_id not in cooling),
                   key=lambda r: (r[2], r[0]))
    chosen = ready[:policy.max_batch_size]
    addresses = DepositAddress.objects.in_bulk([address_id for address_id, _, _ in chosen])
    plan.items = [PlannedItem(deposit_address=addresses[a], amount_base_units=amount, since=since)
                  for a, amount, since in chosen]
    if not plan.items:
        plan.waiting = "nothing to sweep"
        if cooling:
            plan.waiting += (f" ({len(cooling)} address(es) skipped by their last sweep wait "
                             f"{SKIPPED_RETRY_SECONDS}s or a new credit)")
        return plan
    if len(plan.items) < policy.max_batch_size and now - plan.items[0].since < timedelta(
            seconds=policy.batch_window_seconds):
        plan.waiting = f"batching window: {len(plan.items)} of {policy.max_batch_size}, oldest since {plan.items[0].since}"
        return plan
    plan.gas_price_wei = int(client.call("eth_gasPrice", []), 16)
    if policy.max_gas_price_wei is not None and plan.gas_price_wei > policy.max_gas_price_wei:
        plan.waiting = f"gas price {plan.gas_price_wei} above the policy's ceiling {policy.max_gas_price_wei}"
        return plan
    if plan.method == Sweep.Method.TOPUP:
        nonces = client.batch([("eth_getTransactionCount", [item.deposit_address.address, "pending"])
                               for item in plan.items])
        for item, nonce in zip(plan.items, nonces):
            item.nonce = int(nonce, 16)
        return plan
    if plan.method == Sweep.Method.EIP7702:
        if not network.sweeper_address:
            plan.waiting = f"no Sweeper deployed: run `manage.py sweep --network {network.code} --deploy`"
            return plan
        if client.call("eth_getCode", [network.sweeper_address, "latest"]) in ("0x", "", None):
            plan.waiting = f"the Sweeper {network.sweeper_address} is not on chain yet"
            return plan
        codes = client.batch([("eth_getCode", [item.deposit_address.address, "latest"]) for item in plan.items])
        for item, code in zip(plan.items, codes):
            item.authorize = not sweeper.delegated_to(code, network.sweeper_address)
    return plan


# --- Send -------------------------------------------------------------------------------------------------------


def _accounts(network: Network, token: Token, *kinds: str, address: str = "") -> dict:
    return {kind: ledger_account_get(kind=kind, network_id=network.id, token_id=token.id, livemode=network.livemode,
                                     address=address if kind in (AccountKind.HOT_WALLET,) else "")
            for kind in kinds}


def sweep_transition(*, sweep: Sweep, to: str, detail: dict | None = None, **fields) -> Sweep:
    """The one way a sweep's status changes: locked, checked against its status now, saved, event written."""
    with transaction.atomic(savepoint=False):
        locked = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if to not in TRANSITIONS[locked.status]:
            raise SweepError(code="sweep_unexpected_state", message=f"Sweep {locked.pk} is {locked.status}; it "
                                                                    f"cannot become {to}.")
        from_status, locked.status = locked.status, to
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save(update_fields=["status", "updated", *fields])
        SweepEvent.objects.create(sweep=locked, from_status=from_status, to_status=to, detail=detail or {})
    return locked


def sweep_batch_create(*, plan: SweepPlan) -> Sweep | None:
    """Record the planned batch in ONE database transaction: the Sweep and its items (an address already in an
    open sweep makes it roll back: None), the hot wallet's outgoing transaction (type 4 with the authorizations the
    signer is to sign, when some address is swept for the first time), the OutgoingTransfer fact of each address, the
    ledger's `sweep_send` (Dr in_transit, Cr deposits) and the `sent` event."""
    if plan.waiting or not plan.items:
        return None
    network, token = plan.network, plan.token
    hot = SendingAddress.objects.filter(network=network, purpose=SendingAddress.Purpose.HOT).first()
    if hot is None:
        raise ConfigurationError(code="sending_address_missing", message=f"{network.code} has no hot wallet.")
    try:
        with transaction.atomic():
            sweep = Sweep.objects.create(network=network, token=token, method=plan.method, hot_address=hot.address,
                                         amount_base_units=plan.amount_base_units)
            items = SweepItem.objects.bulk_create(
                SweepItem(sweep=sweep, deposit_address=item.deposit_address, amount_base_units=item.amount_base_units,
                          authorization=item.authorize) for item in plan.items)
            if plan.method == Sweep.Method.EIP7702:
                _send_batch(sweep=sweep, plan=plan)
            else:
                _send_topups(sweep=sweep, items=items, plan=plan)
            accounts = _accounts(network, token, AccountKind.IN_TRANSIT, AccountKind.DEPOSITS)
            journal_transaction_post(kind=JournalTransaction.Kind.SWEEP_SEND, source_type=SWEEP,
                                     source_id=str(sweep.pk), memo=f"{len(items)} addresses",
                                     postings=[Posting(accounts[AccountKind.IN_TRANSIT], sweep.amount_base_units),
                                               Posting(accounts[AccountKind.DEPOSITS], -sweep.amount_base_units)])
            SweepEvent.objects.create(sweep=sweep, from_status="", to_status=Status.SENT,
                                      detail={"addresses": len(items), "amount": str(sweep.amount_base_units),
                                              "authorizations": sum(i.authorization for i in items)})
    except IntegrityError:
        logger.info("sweep of %s %s: an address is already in an open sweep; nothing sent", network.code,
                    token.currency)
        return None
    return sweep


def _send_batch(*, sweep: Sweep, plan: SweepPlan) -> None:
    network, token = plan.network, plan.token
    deposits = [item.deposit_address.address for item in plan.items]
    firsts = [item for item in plan.items if item.authorize]
    tx = outgoing_transaction_create(
        network=network, to_address=network.sweeper_address, purpose=SWEEP, source_reference=str(sweep.pk),
        data=sweeper.sweep_many_calldata(token=token.contract_address, deposits=deposits,
                                         amounts=[item.amount_base_units for item in plan.items]),
        gas_limit=sweeper.sweep_gas_limit(deposits=len(deposits), authorizations=len(firsts)),
        authorizations_to_sign=[{"key_ref": deposit_key_ref(index=item.deposit_address.index),
                                 "authority": item.deposit_address.address, "delegate": network.sweeper_address}
                                for item in firsts],
    )
    Sweep.objects.filter(pk=sweep.pk).update(transaction=tx)
    sweep.transaction = tx
    OutgoingTransfer.objects.bulk_create(
        OutgoingTransfer(transaction=tx, kind=OutgoingTransfer.Kind.SWEEP, deposit_address=item.deposit_address,
                         token=token, to_address=sweep.hot_address, amount_base_units=item.amount_base_units)
        for item in plan.items)


def _send_topups(*, sweep: Sweep, items: list[SweepItem], plan: SweepPlan) -> None:
    """The fallback for a network without EIP-7702: for each address, the hot wallet's native top-up for the gas of
    one token transfer (all top-ups first, then all transfers: the signer signs in that order), then the address's
    own transfer of the token to the hot wallet, signed by its key (a `deposit` sending address with its own nonce
    sequence). A transfer broadcast before its top-up is mined is refused by the node and sent again at the next
    pass. The top-up is 3 x the gas price now x the transfer's gas limit (room for the fee to rise); what is left
    stays on the address, in the reconciliation's books."""
    network, token = plan.network, plan.token
    topup_value = 3 * int(plan.gas_price_wei or 0) * sweeper.TOKEN_TRANSFER_GAS
    for item, planned in zip(items, plan.items):
        address = item.deposit_address
        item.topup = outgoing_transaction_create(
            network=network, to_address=address.address, value_base_units=topup_value,
            gas_limit=sweeper.TOPUP_GAS, purpose="topup", source_reference=f"{sweep.pk}:{address.address}")
        OutgoingTransfer.objects.create(transaction=item.topup, kind=OutgoingTransfer.Kind.TOPUP,
                                        deposit_address=address, token=None, to_address=address.address,
                                        amount_base_units=-topup_value)
    for item, planned in zip(items, plan.items):
        address = item.deposit_address
        sending, _ = SendingAddress.objects.get_or_create(
            network=network, address=address.address,
            defaults={"purpose": SendingAddress.Purpose.DEPOSIT, "key_ref": deposit_key_ref(index=address.index),
                      "next_nonce": planned.nonce or 0})
        item.transaction = outgoing_transaction_create(
            network=network, to_address=token.contract_address, sending_address=sending, purpose=SWEEP,
            source_reference=f"{sweep.pk}:{address.address}", gas_limit=sweeper.TOKEN_TRANSFER_GAS,
            data=sweeper.token_transfer_calldata(to=sweep.hot_address, amount=item.amount_base_units))
        OutgoingTransfer.objects.create(transaction=item.transaction, kind=OutgoingTransfer.Kind.SWEEP,
                                        deposit_address=address, token=token, to_address=sweep.hot_address,
                                        amount_base_units=item.amount_base_units)
    SweepItem.objects.bulk_update(items, ["topup", "transaction"])


# --- Settle -----------------------------------------------------------------------------------------------------


def _ended(sweep: Sweep) -> bool:
    if sweep.method == Sweep.Method.EIP7702:
        return sweep.transaction.status in ENDED
    return not (SweepItem.objects.filter(sweep=sweep).filter(
        Q(transaction__isnull=True) | ~Q(transaction__status__in=ENDED) | ~Q(topup__status__in=ENDED)).exists())


def _receipt_moves(sweep: Sweep, *, client) -> tuple[dict[str, int], int, int]:
    """({deposit address: base units it sent to the hot wallet}, gas used, gas cost in wei) from the final receipts
    (read before any lock: they no longer change)."""
    if sweep.method == Sweep.Method.EIP7702:
        txs = [sweep.transaction]
    else:
        txs = [item.transaction for item in sweep.items.select_related("transaction__mined_attempt")
               if item.transaction.mined_attempt_id]
    moved, gas, cost = {}, 0, 0
    for tx in txs:
        gas += tx.gas_used or 0
        cost += (tx.gas_used or 0) * int(tx.effective_gas_price or 0)
        if tx.status != TxStatus.FINAL:
            continue  # reverted or cancelled: nothing moved
        receipt = client.call("eth_getTransactionReceipt", [tx.mined_attempt.tx_hash])
        for address, amount in sweeper.swept_amounts(receipt, token=sweep.token.contract_address,
                                                     hot_wallet=sweep.hot_address).items():
            moved[address] = moved.get(address, 0) + amount
    return moved, gas, cost


def sweep_settle(*, sweep: Sweep, client) -> Sweep | None:
    """Settle one sweep whose transaction(s) ended (None when they have not, or it is settled already): per item
    what its address sent to the hot wallet (at most what was asked) and its share of the gas; the ledger's
    `sweep_settle` (Dr hot_wallet, Cr in_transit) for what moved and `sweep_reversal` (Dr deposits, Cr in_transit)
    for the rest; an OutgoingTransfer `skipped` fact for each address that did not send what was planned."""
    sweep = Sweep.objects.select_related("transaction__mined_attempt", "token", "network").get(pk=sweep.pk)
    if sweep.status != Status.SENT or not _ended(sweep):
        return None
    moved, gas_used, gas_cost = _receipt_moves(sweep, client=client)
    with transaction.atomic():
        locked = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if locked.status != Status.SENT:
            return None
        items = list(SweepItem.objects.filter(sweep=sweep).select_related("deposit_address", "transaction")
                     .order_by("id"))
        share, extra = divmod(gas_used, len(items)) if sweep.method == Sweep.Method.EIP7702 else (0, 0)
        swept_total = 0
        for n, item in enumerate(items):
            item.swept_base_units = min(moved.get(item.deposit_address.address, 0), item.amount_base_units)
            if sweep.method == Sweep.Method.EIP7702:
                item.gas_share = share + (extra if n == 0 else 0)
            else:
                item.gas_share = (item.transaction.gas_used or 0) if item.transaction_id else 0
            item.open = False
            swept_total += item.swept_base_units
            if item.swept_base_units < item.amount_base_units:
                logger.warning("sweep %s skipped %s (%s of %s %s moved): not offered again for %ss unless a new "
                               "credit arrives", sweep.pk, item.deposit_address.address, item.swept_base_units,
                               item.amount_base_units, sweep.token.currency, SKIPPED_RETRY_SECONDS)
                OutgoingTransfer.objects.create(
                    transaction=sweep.transaction or item.transaction, kind=OutgoingTransfer.Kind.SKIPPED,
                    deposit_address=item.deposit_address, token=sweep.token, to_address=sweep.hot_address,
                    amount_base_units=-(item.amount_base_units - item.swept_base_units))
        SweepItem.objects.bulk_update(items, ["swept_base_units", "gas_share", "open"])
        if sweep.method == Sweep.Method.TOPUP:
            _topups_settle(sweep, items)
        accounts = _accounts(sweep.network, sweep.token, AccountKind.IN_TRANSIT, AccountKind.DEPOSITS,
                             AccountKind.HOT_WALLET, address=sweep.hot_address)
        if swept_total:
            journal_transaction_post(kind=JournalTransaction.Kind.SWEEP_SETTLE, source_type=SWEEP,
                                     source_id=str(sweep.pk),
                                     postings=[Posting(accounts[AccountKind.HOT_WALLET], swept_total),
                                               Posting(accounts[AccountKind.IN_TRANSIT], -swept_total)])
        rest = sweep.amount_base_units - swept_total
        if rest:
            journal_transaction_post(kind=JournalTransaction.Kind.SWEEP_REVERSAL, source_type=SWEEP,
                                     source_id=str(sweep.pk),
                                     postings=[Posting(accounts[AccountKind.DEPOSITS], rest),
                                               Posting(accounts[AccountKind.IN_TRANSIT], -rest)])
        return sweep_transition(
            sweep=locked, to=Status.SETTLED if swept_total else Status.FAILED,
            swept_base_units=swept_total, gas_used=gas_used, gas_cost_wei=gas_cost,
            detail={"swept": str(swept_total), "not_swept": str(rest), "gas_used": gas_used,
                    "skipped": sum(1 for i in items if i.swept_base_units < i.amount_base_units)})


def _topups_settle(sweep: Sweep, items: list[SweepItem]) -> None:
    """Top-up method: the native coin each address paid as gas for its own transfer (an OutgoingTransfer `gas` fact
    for reconciliation), and the top-ups the hot wallet sent, expensed as gas in the native coin (Dr gas_spent,
    Cr hot_wallet): what is left on an address after its transfer is a cost of the sweep, not ours to use."""
    topups = {t.pk: t for t in OutgoingTransaction.objects.filter(pk__in=[i.topup_id for i in items])}
    spent = 0
    for item in items:
        tx = item.transaction
        if tx.gas_used:
            OutgoingTransfer.objects.create(transaction=tx, kind=OutgoingTransfer.Kind.GAS,
                                            deposit_address=item.deposit_address, token=None,
                                            to_address=tx.to_address,
                                            amount_base_units=tx.gas_used * int(tx.effective_gas_price or 0))
        topup = topups[item.topup_id]
        if topup.status == TxStatus.FINAL:
            spent += int(topup.value_base_units)
    if spent:
        network = sweep.network
        gas = ledger_account_get(kind=AccountKind.GAS_SPENT, network_id=network.id, token_id=None,
                                 livemode=network.livemode)
        hot = ledger_account_get(kind=AccountKind.HOT_WALLET, network_id=network.id, token_id=None,
                                 livemode=network.livemode, address=sweep.hot_address)
        journal_transaction_post(kind=JournalTransaction.Kind.SWEEP_TOPUP, source_type=SWEEP,
                                 source_id=str(sweep.pk), postings=[Posting(gas, spent), Posting(hot, -spent)])


def sweeps_settle(*, network: Network, client) -> int:
    """Settle every sent sweep of `network` whose transactions ended; returns how many. One failing sweep is logged
    and left for the next run."""
    settled = 0
    for sweep in Sweep.objects.filter(network=network, status=Status.SENT).order_by("id"):
        try:
            if sweep_settle(sweep=sweep, client=client) is not None:
                settled += 1
        except Exception:
            logger.exception("settling sweep %s failed; left for the next run", sweep.pk)
    return settled


@dataclass
class RunSummary:
    settled: int = 0
    sent: list[int] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)


def sweeps_run(*, network: Network, client, dry_run: bool = False, now: datetime | None = None,
               max_batches: int = 20) -> RunSummary:
    """One pass over `network`: settle what ended, then send batches (each policy's token) until nothing is ready.
    `dry_run`: only the plans, nothing written."""
    summary = RunSummary()
    if not dry_run:
        summary.settled = sweeps_settle(network=network, client=client)
    for policy in SweepPolicy.objects.filter(network=network, is_active=True).select_related("token"):
        for _ in range(max_batches):
            plan = sweep_plan(network=network, token=policy.token, client=client, now=now)
            summary.plans.append(plan.describe())
            if dry_run or plan.waiting:
                break
            sweep = sweep_batch_create(plan=plan)
            if sweep is None:
                break
            summary.sent.append(sweep.pk)
    return summary
