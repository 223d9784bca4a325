"""Reconciliation: the balances of our deposit addresses on the chain against what the gateway recorded.

For each address and token (and the native coin) it compares, at ONE block:

    onchain  = eth_getBalance(address, B)  or  token.balanceOf(address) by eth_call at B
    recorded = the final, not orphaned Transfer rows to the address in blocks <= B,
               less what the gateway itself moved out of the address (`outgoing_base_units`: the sweeps)

and records each difference as a `BalanceDiscrepancy` for staff. B is the reconciliation block: the lower of the
scanner's cursor and the last final block it saw (`ChainCursor.finalized_number`). Every transfer of a block <= B is
then recorded and final, so in-flight transfers never show up as differences; a pair that still has a live,
not-yet-final transfer at or below B (a settle step that has not run yet) is skipped this run, not reported.

What it catches that the scanner cannot: native coin delivered by an internal transaction (a contract's CALL with
value: a block scan sees only the transactions' own `value`, and traces are not offered by most providers), native
coin on a network without `scan_native`, tokens sent by other means than a Transfer log, a scanner bug, and funds
that left an address without us (a leaked key).

Which addresses (a million issued addresses cannot all be read every ten minutes):
- every deposit address that has ever received a Transfer on the network (the funds we hold there), and
- every address issued in the last `GATEWAY_RECONCILE_RECENT_DAYS` days (default 7), on every network: deposit
  addresses serve all EVM networks, and a payer whose wallet is a contract pays by internal transaction to an
  address that then has no Transfer row at all. Older addresses without transfers are not read; `addresses=`
  (or `manage.py reconcile --address`) checks any address on demand.
Each run reads (1 + tokens of the network) balances per address, in JSON-RPC batches of `batch` addresses.

Crash safety: each batch reads its balances first (no transaction open during RPC), then writes its rows in ONE
transaction. A discrepancy is unique per (network, address, token, on-chain, recorded): a second run, a concurrent
run or a run killed and restarted at any line records nothing twice. Once the amounts change (more coin arrives,
staff sweep it), the new pair is a new row. A resolved row is not recorded again while the amounts stay the same.

The node must still hold the state of block B: the finalized block is recent (minutes), within what full nodes keep
(geth: 128 blocks; BSC's finalized block is a few blocks behind head). A node that pruned it answers "missing trie
node", which the RPC client treats as unavailable: the run stops for that network and says so.
"""
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone

from wallets.models import (BalanceDiscrepancy, DepositAddress, Network, OutgoingTransaction, OutgoingTransfer, Token,
                            Transfer)

from .rpc import RpcClient, RpcError, RpcUnavailable
from .selectors import chain_cursor_get

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 100  # addresses per batch: with two tokens, 300 balance calls (the client splits big batches)
BALANCE_OF_SELECTOR = "0x70a08231"  # balanceOf(address)
TOKEN_NATIVE = None  # the key of the native coin in the (address, token) pairs

Pair = tuple[int, int | None]  # (deposit_address_id, token_id or None for the native coin)


@dataclass
class ReconcileSummary:
    network: str
    status: str = "reconciled"  # reconciled | no_final_block | unavailable | error
    block_number: int | None = None
    addresses: int = 0  # addresses whose balances were read
    balances: int = 0  # (address, token) pairs compared
    skipped_pending: int = 0  # pairs with a live, not yet final transfer at or below the block: not compared
    differences: int = 0  # pairs whose balances differ (new or already recorded)
    recorded: int = 0  # new BalanceDiscrepancy rows
    error: str = ""
    seconds: float = 0.0

    def as_json(self) -> dict:
        return {
            "network": self.network, "status": self.status, "block_number": self.block_number,
            "addresses": self.addresses, "balances": self.balances, "skipped_pending": self.skipped_pending,
            "differences": self.differences, "recorded": self.recorded, "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def reconcile_block_number(*, network: Network) -> int | None:
    """The block reconciliation reads at: min(cursor, last final block seen); None before anything is final."""
    cursor = chain_cursor_get(network=network)
    if cursor is None:
        return None
    block = min(cursor.block_number, cursor.finalized_number)
    return block if block >= 0 else None


def recent_address_days() -> int:
    return int(getattr(settings, "GATEWAY_RECONCILE_RECENT_DAYS", 7))


def addresses_to_reconcile(*, network: Network, since: datetime, batch: int) -> Iterator[list[DepositAddress]]:
    """The deposit addresses with a transfer on `network` or issued since `since`, by id, `batch` at a time (keyset
    pagination on the primary key, with an index probe of the transfers per address: never loads them all)."""
    received = Transfer.objects.filter(network=network, deposit_address=OuterRef("pk"))
    candidates = DepositAddress.objects.filter(Q(created__gte=since) | Exists(received)).only("id", "address")
    last_id = 0
    while True:
        page = list(candidates.filter(id__gt=last_id).order_by("id")[:batch])
        if not page:
            return
        yield page
        last_id = page[-1].id


def outgoing_base_units(*, network: Network, deposit_address_ids: list[int], up_to_block: int) -> dict[Pair, int]:
    """What the gateway itself moved out of these addresses in blocks <= `up_to_block`, per (address, token): the
    `OutgoingTransfer` facts the sweeps write with their transactions (tokens swept, less a planned sweep the batch
    skipped; for the non-7702 fallback, the native coin: gas the address paid, less the top-up the hot wallet sent
    it), counted once their transaction is mined, succeeded and at or below that block (which is final: a mined
    transaction whose final status the manager has not written yet counts too). Gas is paid by a reverted
    transaction too: a `gas` fact counts once its transaction is mined at all (mined, final, failed or cancelled
    with a receipt)."""
    Status, Kind = OutgoingTransaction.Status, OutgoingTransfer.Kind
    succeeded = Q(transaction__receipt_status=1, transaction__status__in=[Status.MINED, Status.FINAL])
    paid_gas = Q(kind=Kind.GAS, transaction__receipt_status__isnull=False,
                 transaction__status__in=[Status.MINED, Status.FINAL, Status.FAILED, Status.CANCELLED])
    rows = (
        OutgoingTransfer.objects.filter(
            transaction__network=network, deposit_address_id__in=deposit_address_ids,
            transaction__block_number__lte=up_to_block,
        ).filter(succeeded | paid_gas)
        .values("deposit_address_id", "token_id")
        .annotate(total=Sum("amount_base_units"))
    )
    return {(row["deposit_address_id"], row["token_id"]): int(row["total"]) for row in rows}


def recorded_balances(*, network: Network, deposit_address_ids: list[int],
                      up_to_block: int) -> tuple[dict[Pair, int], set[Pair]]:
    """({(address id, token id): sum of final, not orphaned transfers in blocks <= up_to_block},
    {pairs that also have a live transfer not final yet in those blocks}) in one query."""
    rows = (
        Transfer.objects.filter(
            network=network, deposit_address_id__in=deposit_address_ids, block_number__lte=up_to_block,
            orphaned_at__isnull=True,
        )
        .values("deposit_address_id", "token_id")
        .annotate(
            received=Sum("amount_base_units", filter=Q(finalized_at__isnull=False)),
            pending=Count("id", filter=Q(finalized_at__isnull=True)),
        )
    )
    recorded, pending = {}, set()
    for row in rows:
        pair = (row["deposit_address_id"], row["token_id"])
        recorded[pair] = int(row["received"] or 0)
        if row["pending"]:
            pending.add(pair)
    return recorded, pending


def balances_read(*, client: RpcClient, addresses: list[DepositAddress], tokens: list[Token],
                  block_number: int) -> dict[Pair, int]:
    """The balances at `block_number` of each address in the native coin and in each token, in JSON-RPC batches.
    Raises RpcError / RpcUnavailable (nothing partial is returned)."""
    block = hex(block_number)
    calls, pairs = [], []
    for address in addresses:
        calls.append(("eth_getBalance", [address.address, block]))
        pairs.append((address.id, TOKEN_NATIVE))
        data = BALANCE_OF_SELECTOR + address.address[2:].lower().rjust(64, "0")
        for token in tokens:
            calls.append(("eth_call", [{"to": token.contract_address, "data": data}, block]))
            pairs.append((address.id, token.id))
    results = client.batch(calls) if calls else []
    return {pair: _uint(result, pair) for pair, result in zip(pairs, results)}


def _uint(value, pair: Pair) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(0, f"not a hex quantity for {pair}: {value!r}", method="balance")
    if value == "0x":
        return 0  # eth_call to an address without code at that block (the token did not exist yet): no balance
    return int(value[:66] if len(value) > 66 else value, 16)


def network_reconcile(*, network: Network, client: RpcClient, addresses: Iterable[DepositAddress] | None = None,
                      batch: int = DEFAULT_BATCH, now: datetime | None = None) -> ReconcileSummary:
    """Compare the on-chain balances of `network`'s deposit addresses (default: see the module doc) with what we
    recorded, at the reconciliation block, and record each new difference. Never raises for a node problem: the
    summary's status says what happened (database errors propagate)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    started = time.monotonic()
    summary = ReconcileSummary(network=network.code)
    block_number = reconcile_block_number(network=network)
    if block_number is None:
        summary.status = "no_final_block"
        return summary
    summary.block_number = block_number
    tokens = list(Token.objects.filter(network=network).order_by("id"))  # inactive tokens may still hold funds
    names = {TOKEN_NATIVE: network.native_currency, **{token.id: token.currency for token in tokens}}
    if addresses is None:
        since = (now or timezone.now()) - timedelta(days=recent_address_days())
        pages = addresses_to_reconcile(network=network, since=since, batch=batch)
    else:
        listed = list(addresses)
        pages = (listed[i:i + batch] for i in range(0, len(listed), batch))
    try:
        for page in pages:
            balances = balances_read(client=client, addresses=page, tokens=tokens, block_number=block_number)
            _batch_record(network=network, page=page, balances=balances, block_number=block_number, summary=summary,
                          names=names)
    except RpcUnavailable as exc:
        summary.status, summary.error = "unavailable", str(exc)
        logger.warning("reconcile %s: RPC unavailable, stopped after %d addresses: %s", network.code,
                       summary.addresses, exc)
    except RpcError as exc:
        summary.status, summary.error = "error", str(exc)
        logger.error("reconcile %s: RPC error, stopped after %d addresses: %s", network.code, summary.addresses, exc)
    summary.seconds = time.monotonic() - started
    return summary


@transaction.atomic
def _batch_record(*, network: Network, page: list[DepositAddress], balances: dict[Pair, int], block_number: int,
                  summary: ReconcileSummary, names: dict[int | None, str]) -> None:
    ids = [address.id for address in page]
    recorded, pending = recorded_balances(network=network, deposit_address_ids=ids, up_to_block=block_number)
    outgoing = outgoing_base_units(network=network, deposit_address_ids=ids, up_to_block=block_number)
    by_id = {address.id: address.address for address in page}
    found: list[BalanceDiscrepancy] = []
    for pair, onchain in balances.items():
        if pair in pending:
            summary.skipped_pending += 1
            continue
        summary.balances += 1
        expected = recorded.get(pair, 0) - outgoing.get(pair, 0)
        if onchain != expected:
            address_id, token_id = pair
            found.append(BalanceDiscrepancy(
                network=network, deposit_address_id=address_id, token_id=token_id, block_number=block_number,
                onchain_base_units=onchain, recorded_base_units=expected, difference_base_units=onchain - expected,
            ))
    summary.addresses += len(page)
    summary.differences += len(found)
    if not found:
        return
    known = set(
        BalanceDiscrepancy.objects.filter(network=network, deposit_address_id__in={d.deposit_address_id for d in found})
        .values_list("deposit_address_id", "token_id", "onchain_base_units", "recorded_base_units")
    )
    new = [d for d in found
           if (d.deposit_address_id, d.token_id, d.onchain_base_units, d.recorded_base_units) not in known]
    # ignore_conflicts: a concurrent run that recorded the same fact first wins; the unique constraint decides.
    BalanceDiscrepancy.objects.bulk_create(new, ignore_conflicts=True)
    summary.recorded += len(new)
    for d in new:
        logger.warning(
            "reconcile %s: %s %s on chain %d, recorded %d, difference %+d at block %d", network.code,
            by_id[d.deposit_address_id], names.get(d.token_id, d.token_id),
            d.onchain_base_units, d.recorded_base_units, d.difference_base_units, block_number,
        )
