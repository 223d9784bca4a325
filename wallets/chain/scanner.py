"""The chain scanner: `scan_step` moves one network's cursor over the next contiguous block range, in ONE database
transaction, under a per-network advisory lock.

A step, in order (every write inside the one transaction, so a crash at any line leaves the previous state and the
next step redoes the work; every write is idempotent):

1. `pg_try_advisory_xact_lock(LOCK_CLASS, network.id)`; not acquired -> LOCKED, nothing done (another scanner runs).
2. The node's head; the cursor row (`select_for_update`; created at the head on the first run).
3. Reorg check (reorg.chain_verify): our hash at the cursor against the node's; on a divergence walk back to the
   common ancestor, orphan the transfers above it (`orphaned_at`, never deleted), drop the stored blocks above it,
   move the cursor back.
4. The final block by the network's rule (finality.final_block_number).
5. The range [cursor+1, min(head, cursor+range)]: `eth_getLogs` of every Token contract of the network (active or
   not), topic0 = Transfer, over an adaptive range (halved on a range / result-cap error, or the provider's
   suggestion; grown back slowly; remembered per process); the headers of the range's blocks that are not final
   (plus the range's last one), checked for parent-hash continuity with the stored chain; each log's blockHash
   against them; with `network.scan_native`, the bodies of every block of the range and the receipts of the matched
   transactions. A disagreement between two answers means the node reorged mid-step: ChainMoved, nothing written.
6. The distinct recipients looked up in ONE query (`address = ANY(%s)` on the unique index); Transfer rows inserted
   (bulk_create, ignore_conflicts: the unique (network, tx, log, block hash) makes it exactly-once), final at once
   when their block already is.
7. Finality (finality.transfers_settle), pruning of the stored chain well below the final block, AddressActivity
   rows (one per affected address: transfer seen, final or orphaned), the cursor saved.

After COMMIT, if AddressActivity rows were written, the payments side is told by task NAME (never an import):
`payments.tasks.process_address_activity`.
"""
import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from gateway.celery import app as celery_app
from wallets.models import AddressActivity, ChainCursor, Network, ScannedBlock, Token, Transfer

from . import finality, reorg
from .decode import TRANSFER_TOPIC, decode_transfer_log
from .reorg import ChainMoved, Header, headers_fetch, scanned_blocks_store
from .rpc import RpcClient, RpcError, RpcUnavailable
from .selectors import chain_cursor_get, deposit_address_ids_by_address
from .services import chain_cursor_init

logger = logging.getLogger(__name__)

PAYMENTS_ACTIVITY_TASK = "payments.tasks.process_address_activity"
# pg_try_advisory_xact_lock(int4, int4): this class with the network's id. Fixed forever (two versions of the code
# running side by side during a deploy must take the same lock).
LOCK_CLASS = zlib.crc32(b"wallets.chain.scanner") & 0x7FFFFFFF
NEW_CURSOR_BLOCKS_BEHIND_HEAD = 0  # a brand-new cursor starts scanning at head - this
NATIVE_MAX_BLOCKS = 100  # full bodies are heavy: a step of a scan_native network reads at most this many blocks
SCANNED_BLOCKS_KEEP_BELOW_FINAL = 64
RANGE_GROWTH_DIVISOR = 8  # after a full-size success the log range grows by 1/8 (at least one block)


class Status(StrEnum):
    SCANNED = "scanned"  # a range was processed (the cursor moved; maybe back first, after a reorg)
    IDLE = "idle"  # nothing new on the node (finality may still have advanced)
    WAITING = "waiting"  # the node is behind our cursor (a lagging endpoint, or a rollback not yet re-mined)
    LOCKED = "locked"  # another scanner holds this network's lock
    RETRY = "retry"  # the node's chain moved mid-step: nothing written, step again
    UNAVAILABLE = "unavailable"  # every RPC endpoint failed: nothing written, back off
    ERROR = "error"  # the node refused a request we cannot adapt to: nothing written, back off


BACK_OFF = frozenset({Status.LOCKED, Status.UNAVAILABLE, Status.ERROR})


@dataclass
class StepResult:
    network: str
    status: Status
    from_block: int | None = None  # the range scanned (after a reorg's walk back)
    to_block: int | None = None
    cursor: int | None = None  # where the cursor stands after the step
    head: int | None = None
    finalized: int | None = None
    transfers_seen: int = 0  # new Transfer rows
    transfers_finalized: int = 0
    transfers_orphaned: int = 0
    reorg_depth: int = 0  # blocks the cursor moved back before scanning
    activity_addresses: int = 0  # AddressActivity rows written
    log_range: int | None = None  # the adaptive eth_getLogs range after the step
    error: str = ""

    @property
    def lag(self) -> int | None:
        return None if self.head is None or self.cursor is None else max(0, self.head - self.cursor)

    @property
    def caught_up(self) -> bool:
        return self.status in (Status.IDLE, Status.WAITING) or (
            self.status == Status.SCANNED and self.lag == 0
        )

    @property
    def back_off(self) -> bool:
        """The caller should wait (a few seconds, or the next beat) before stepping again."""
        return self.status in BACK_OFF

    def as_json(self) -> dict:
        return {
            "network": self.network, "status": str(self.status), "from_block": self.from_block,
            "to_block": self.to_block, "cursor": self.cursor, "head": self.head, "finalized": self.finalized,
            "lag": self.lag, "transfers_seen": self.transfers_seen, "transfers_finalized": self.transfers_finalized,
            "transfers_orphaned": self.transfers_orphaned, "reorg_depth": self.reorg_depth,
            "activity_addresses": self.activity_addresses, "log_range": self.log_range, "error": self.error,
        }


# --- The adaptive eth_getLogs range, per network, per process ---------------------------------------------------

_log_ranges: dict[int, int] = {}
_log_ranges_lock = threading.Lock()


def log_range_get(network: Network) -> int:
    ceiling = max(1, network.max_log_range)
    with _log_ranges_lock:
        return max(1, min(_log_ranges.get(network.id, ceiling), ceiling))


def _log_range_shrink(network: Network, size: int) -> None:
    with _log_ranges_lock:
        _log_ranges[network.id] = max(1, size)


def _log_range_succeeded(network: Network, used: int) -> None:
    """Grow back slowly, and only after a request of the full current size (a short range at the head says
    nothing about the provider's cap)."""
    ceiling = max(1, network.max_log_range)
    with _log_ranges_lock:
        current = max(1, min(_log_ranges.get(network.id, ceiling), ceiling))
        if used >= current:
            _log_ranges[network.id] = min(ceiling, current + max(1, current // RANGE_GROWTH_DIVISOR))


def log_ranges_forget() -> None:
    """Start every network at its max_log_range again (tests)."""
    with _log_ranges_lock:
        _log_ranges.clear()


# --- One step ------------------------------------------------------------------------------------------------------


def scan_step(*, network: Network, client: RpcClient | None = None, max_blocks: int | None = None) -> StepResult:
    """Process the next range of `network` (at most `max_blocks` blocks) in one transaction; see the module doc.

    Never raises for a node problem: the result says what happened and whether to back off (ImproperlyConfigured
    when no client is given and the network has no RPC URL; database errors propagate). Two scanners of one
    network never both work (the advisory lock; the cursor row lock behind it), and even if they did, the unique
    constraint on transfers would credit each transfer once."""
    if max_blocks is not None and max_blocks < 1:
        raise ValueError("max_blocks must be at least 1")
    if client is None:
        client = RpcClient.for_network(network)
    try:
        with transaction.atomic():
            if not _lock_try(network=network):
                return StepResult(network=network.code, status=Status.LOCKED)
            result = _step(network=network, client=client, max_blocks=max_blocks)
            if result.activity_addresses:
                transaction.on_commit(_notify_payments)
        return result
    except RpcUnavailable as exc:
        logger.warning("%s: RPC unavailable, nothing written: %s", network.code, exc)
        return StepResult(network=network.code, status=Status.UNAVAILABLE, error=str(exc))
    except ChainMoved as exc:
        logger.info("%s: the chain moved during the step, nothing written: %s", network.code, exc)
        return StepResult(network=network.code, status=Status.RETRY, error=str(exc))
    except RpcError as exc:
        logger.error("%s: RPC error, nothing written: %s", network.code, exc)
        return StepResult(network=network.code, status=Status.ERROR, error=str(exc))


def _lock_try(*, network: Network) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_CLASS, network.id])
        return bool(cursor.fetchone()[0])


def _notify_payments() -> None:
    try:
        celery_app.send_task(PAYMENTS_ACTIVITY_TASK)
    except Exception:  # the broker is down: the payments beat fallback consumes the queue rows anyway
        logger.warning("could not send %s; the queue rows wait for its beat run", PAYMENTS_ACTIVITY_TASK,
                       exc_info=True)


def _cursor_lock(*, network: Network, head: int) -> ChainCursor:
    cursor = ChainCursor.objects.select_for_update().filter(network=network).first()
    if cursor is None:
        chain_cursor_init(network=network, block_number=max(-1, head - NEW_CURSOR_BLOCKS_BEHIND_HEAD - 1))
        cursor = ChainCursor.objects.select_for_update().get(network=network)
    return cursor


def _step(*, network: Network, client, max_blocks: int | None) -> StepResult:
    now = timezone.now()
    head = client.block_number()
    cursor = _cursor_lock(network=network, head=head)
    result = StepResult(network=network.code, status=Status.IDLE, head=head)
    addresses: set[int] = set()

    verified = reorg.chain_verify(network=network, cursor=cursor, client=client, head=head, now=now)
    if verified.waiting:
        result.status, result.cursor = Status.WAITING, cursor.block_number
        result.finalized, result.log_range = cursor.finalized_number, log_range_get(network)
        return result
    result.reorg_depth, result.transfers_orphaned = verified.depth, verified.orphaned
    addresses |= verified.addresses

    final = finality.final_block_number(network=network, client=client, head=head)
    start = cursor.block_number + 1
    if start <= head:
        limit = log_range_get(network)
        if max_blocks is not None:
            limit = min(limit, max_blocks)
        if network.scan_native:
            limit = min(limit, NATIVE_MAX_BLOCKS)
        scanned = _range_scan(network=network, client=client, cursor=cursor, start=start,
                              end=min(head, cursor.block_number + limit), final=final, now=now)
        result.status, result.from_block, result.to_block = Status.SCANNED, start, scanned.end
        result.transfers_seen = scanned.inserted
        addresses |= scanned.addresses
    elif verified.depth:
        result.status = Status.SCANNED

    settled = finality.transfers_settle(
        network=network, client=client, up_to=cursor.block_number, final=final,
        floor=min(cursor.finalized_number, final) - finality.SETTLE_MARGIN_BLOCKS, now=now,
    )
    result.transfers_finalized = settled.finalized
    result.transfers_orphaned += settled.orphaned
    addresses |= settled.addresses

    prune_below = min(final, cursor.block_number) - SCANNED_BLOCKS_KEEP_BELOW_FINAL
    ScannedBlock.objects.filter(network=network, number__lt=prune_below).delete()

    if addresses:
        AddressActivity.objects.bulk_create([AddressActivity(deposit_address_id=a) for a in sorted(addresses)])
    cursor.head_number = head
    cursor.finalized_number = max(cursor.finalized_number, final)
    cursor.save(update_fields=["block_number", "block_hash", "head_number", "finalized_number", "updated"])

    result.cursor, result.finalized = cursor.block_number, final
    result.activity_addresses = len(addresses)
    result.log_range = log_range_get(network)
    return result


# --- One range -----------------------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    token: Token | None  # None: the native coin
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    from_address: str
    to_address: str
    amount: int


@dataclass
class _RangeOutcome:
    end: int
    inserted: int = 0
    addresses: set[int] = field(default_factory=set)


def _range_scan(*, network: Network, client, cursor: ChainCursor, start: int, end: int, final: int,
                now: datetime) -> _RangeOutcome:
    tokens = {token.contract_address.lower(): token for token in Token.objects.filter(network=network)}
    logs: list[dict] = []
    if tokens:
        end, logs = _logs_fetch(network=network, client=client, start=start, end=end, contracts=sorted(tokens))

    # The hash chain of the range: every block that is not final yet (reorgs happen there), plus the last one (the
    # cursor's anchor). Final blocks cannot change, so a catch-up over them reads one header per range.
    wanted = sorted(set(range(max(start, final), end + 1)) | {end})
    bodies: list[Header] = []
    if network.scan_native:
        bodies = _complete(headers_fetch(client=client, numbers=list(range(start, end + 1)), full_txs=True))
        known = {body.number: body for body in bodies}
        headers = [known[n] for n in wanted]
        chain = bodies
    else:
        headers = _complete(headers_fetch(client=client, numbers=wanted))
        chain = headers
    _check_continuity(cursor=cursor, headers=chain)
    hashes = {header.number: header.hash for header in chain}

    candidates = _log_candidates(logs=logs, tokens=tokens, hashes=hashes, start=start, end=end)
    if bodies:
        candidates += _native_candidates(bodies=bodies)
    address_ids = deposit_address_ids_by_address(addresses={c.to_address for c in candidates})
    matched = [c for c in candidates if c.to_address in address_ids]
    if network.scan_native:
        matched = _drop_failed_native(client=client, candidates=matched)

    scanned_blocks_store(network=network, headers=headers)
    outcome = _RangeOutcome(end=end)
    outcome.inserted, outcome.addresses = _transfers_insert(
        network=network, candidates=matched, address_ids=address_ids, final=final, now=now, start=start, end=end
    )
    last = headers[-1]
    cursor.block_number, cursor.block_hash = last.number, last.hash
    return outcome


def _complete(headers: list[Header | None]) -> list[Header]:
    if any(header is None for header in headers):
        raise ChainMoved("a block of the range is gone from the node")
    return headers  # type: ignore[return-value]


def _check_continuity(*, cursor: ChainCursor, headers: list[Header]) -> None:
    """Consecutive headers must chain by parent hash, and the first of the range must sit on the cursor's block."""
    previous: Header | None = None
    for header in headers:
        if previous is None:
            extends_cursor = header.number == cursor.block_number + 1 and cursor.block_hash
            if extends_cursor and header.parent_hash != cursor.block_hash:
                raise ChainMoved(f"block {header.number} does not extend our block {cursor.block_number}")
        elif header.number == previous.number + 1 and header.parent_hash != previous.hash:
            raise ChainMoved(f"block {header.number} does not extend block {previous.number}")
        previous = header


def _logs_fetch(*, network: Network, client, start: int, end: int, contracts: list[str]) -> tuple[int, list[dict]]:
    """eth_getLogs of the Transfer topic over [start, end], shrinking `end` on a range or result-cap error (to the
    provider's suggestion when it gives one, else half). Returns the range's end actually scanned and the logs."""
    while True:
        try:
            logs = client.get_logs(start, end, contracts, [TRANSFER_TOPIC])
        except RpcError as exc:
            size = end - start + 1
            if not exc.is_range_error or size <= 1:
                raise
            suggested = exc.suggested_range
            if suggested and suggested[0] <= start <= suggested[1] < end:
                new_end = suggested[1]
            else:
                new_end = start + size // 2 - 1
            logger.info("%s: eth_getLogs [%d, %d] refused (%s); trying %d blocks", network.code, start, end,
                        exc.message, new_end - start + 1)
            _log_range_shrink(network, new_end - start + 1)
            end = new_end
            continue
        _log_range_succeeded(network, end - start + 1)
        return end, logs


def _log_candidates(*, logs: list[dict], tokens: dict[str, Token], hashes: dict[int, str], start: int,
                    end: int) -> list[_Candidate]:
    candidates = []
    for log in logs:
        if log.get("removed"):
            continue
        decoded = decode_transfer_log(log)
        if decoded is None:  # an ERC-721 Transfer (tokenId indexed), or malformed
            continue
        token_address, sender, recipient, amount, block_number, block_hash, tx_hash, log_index = decoded
        token = tokens.get(token_address.lower())
        if token is None or not start <= block_number <= end:
            continue
        block_hash = block_hash.lower()
        known = hashes.get(block_number)
        if known is not None and known != block_hash:
            raise ChainMoved(f"a log of block {block_number} has hash {block_hash}, the block has {known}")
        candidates.append(_Candidate(
            token=token, tx_hash=tx_hash.lower(), log_index=log_index, block_number=block_number,
            block_hash=block_hash, from_address=sender.lower(), to_address=recipient.lower(), amount=amount,
        ))
    return candidates


def _native_candidates(*, bodies: list[Header]) -> list[_Candidate]:
    candidates = []
    for body in bodies:
        for tx in body.transactions:
            to, value = tx.get("to"), int(tx.get("value") or "0x0", 16)
            if not to or value <= 0:
                continue
            candidates.append(_Candidate(
                token=None, tx_hash=tx["hash"].lower(), log_index=-1, block_number=body.number, block_hash=body.hash,
                from_address=tx["from"].lower(), to_address=to.lower(), amount=value,
            ))
    return candidates


def _drop_failed_native(*, client, candidates: list[_Candidate]) -> list[_Candidate]:
    """A reverted transaction moves no value: keep the native ones whose receipt says success (one batch)."""
    native = [c for c in candidates if c.token is None]
    if not native:
        return candidates
    receipts = client.batch([("eth_getTransactionReceipt", [c.tx_hash]) for c in native])
    failed = set()
    for candidate, receipt in zip(native, receipts):
        if receipt is None or receipt["blockHash"].lower() != candidate.block_hash:
            raise ChainMoved(f"the receipt of {candidate.tx_hash} is not in block {candidate.block_hash}")
        if int(receipt["status"], 16) != 1:
            failed.add(id(candidate))
    return [c for c in candidates if id(c) not in failed]


def _transfers_insert(*, network: Network, candidates: list[_Candidate], address_ids: dict[str, int], final: int,
                      now: datetime, start: int, end: int) -> tuple[int, set[int]]:
    """Insert the transfers not recorded yet; returns how many and their deposit addresses. Those of a block that is
    already final are final at once (their block hash is the canonical one: final blocks do not change)."""
    if not candidates:
        return 0, set()
    existing: dict[tuple, bool] = {}  # key -> has a live (not orphaned) row
    for tx_hash, log_index, block_hash, orphaned_at in Transfer.objects.filter(
        network=network, block_number__gte=start, block_number__lte=end,
    ).values_list("tx_hash", "log_index", "block_hash", "orphaned_at"):
        existing[(tx_hash, log_index, block_hash)] = existing.get((tx_hash, log_index, block_hash)) or orphaned_at is None
    rows, keys = [], set()
    for c in candidates:
        key = (c.tx_hash, c.log_index, c.block_hash)
        if key in keys:
            continue
        keys.add(key)
        if existing.get(key):
            continue  # already recorded (a step redone after a crash, or a second scanner)
        if key in existing:
            # The block came back after we orphaned it (a flip-flop between forks or between endpoints): the orphaned
            # row stays as history, the transfer counts again through a new row.
            logger.warning("%s: transfer %s:%d is in block %s again, which we had orphaned", network.code,
                           c.tx_hash, c.log_index, c.block_hash)
        rows.append(Transfer(
            network=network, token=c.token, tx_hash=c.tx_hash, log_index=c.log_index, block_number=c.block_number,
            block_hash=c.block_hash, from_address=c.from_address, to_address=c.to_address,
            deposit_address_id=address_ids[c.to_address], amount_base_units=c.amount,
            finalized_at=now if c.block_number <= final else None,
        ))
    Transfer.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows), {row.deposit_address_id for row in rows}


def rpc_client_or_none(network: Network) -> RpcClient | None:
    """The process's RPC client of `network`, or None when no RPC URL is configured for it."""
    try:
        return RpcClient.for_network(network)
    except ImproperlyConfigured:
        return None


# --- Several steps ---------------------------------------------------------------------------------------------------


@dataclass
class ScanSummary:
    network: str
    steps: int = 0
    first_block: int | None = None
    cursor: int | None = None
    head: int | None = None
    finalized: int | None = None
    transfers_seen: int = 0
    transfers_finalized: int = 0
    transfers_orphaned: int = 0
    reorgs: int = 0
    last_status: str = ""
    error: str = ""
    seconds: float = 0.0

    @property
    def lag(self) -> int | None:
        return None if self.head is None or self.cursor is None else max(0, self.head - self.cursor)

    @property
    def caught_up(self) -> bool:
        return self.last_status in (Status.IDLE, Status.WAITING) or (
            self.last_status == Status.SCANNED and self.lag == 0
        )

    @property
    def back_off(self) -> bool:
        return self.last_status in BACK_OFF

    def add(self, step: StepResult) -> None:
        self.steps += 1
        self.last_status, self.error = str(step.status), step.error
        if step.from_block is not None and self.first_block is None:
            self.first_block = step.from_block
        for name in ("cursor", "head", "finalized"):
            if getattr(step, name) is not None:
                setattr(self, name, getattr(step, name))
        self.transfers_seen += step.transfers_seen
        self.transfers_finalized += step.transfers_finalized
        self.transfers_orphaned += step.transfers_orphaned
        self.reorgs += 1 if step.reorg_depth else 0

    def as_json(self) -> dict:
        return {
            "network": self.network, "steps": self.steps, "first_block": self.first_block, "cursor": self.cursor,
            "head": self.head, "finalized": self.finalized, "lag": self.lag, "transfers_seen": self.transfers_seen,
            "transfers_finalized": self.transfers_finalized, "transfers_orphaned": self.transfers_orphaned,
            "reorgs": self.reorgs, "status": self.last_status, "caught_up": self.caught_up, "error": self.error,
            "seconds": round(self.seconds, 3),
        }


MAX_RETRIES_IN_A_ROW = 5


def network_scan(*, network: Network, client: RpcClient | None = None, budget_seconds: float = 5.0,
                 to_block: int | None = None, on_step=None) -> ScanSummary:
    """Step `network` until it is caught up with the node (or with `to_block`), a step says to back off, or
    `budget_seconds` are spent (checked between steps). `on_step(StepResult)` sees every step (progress output)."""
    started = time.monotonic()
    summary = ScanSummary(network=network.code)
    if client is None:
        client = RpcClient.for_network(network)
    retries = 0
    while True:
        max_blocks = None
        if to_block is not None:
            cursor = chain_cursor_get(network=network)
            if cursor is not None and cursor.block_number >= to_block:
                summary.cursor = cursor.block_number
                summary.last_status = summary.last_status or str(Status.IDLE)
                break
            if cursor is not None:
                max_blocks = to_block - cursor.block_number
        step = scan_step(network=network, client=client, max_blocks=max_blocks)
        summary.add(step)
        if on_step is not None:
            on_step(step)
        retries = retries + 1 if step.status == Status.RETRY else 0
        if step.back_off or retries >= MAX_RETRIES_IN_A_ROW:
            break
        if step.status != Status.RETRY and (step.caught_up or (to_block is not None and step.cursor is not None
                                                               and step.cursor >= to_block)):
            break
        if time.monotonic() - started >= budget_seconds:
            break
    summary.seconds = time.monotonic() - started
    return summary
