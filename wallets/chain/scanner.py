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
   not), topic0 = Transfer (or the issuers' AddedBlackList / Blacklisted: one more OR'd topic, same call; those
   naming one of our addresses become IssuerBlacklistAlert rows), over an adaptive range (starting at INITIAL_LOG_RANGE blocks and doubling; halved on a
   range / result-cap error, or the provider's suggestion, then grown back slowly; shrunk so that an answer holds
   about LOGS_PER_STEP logs; remembered per process; in a catch-up, the next final range is already being fetched
   by a thread while this step writes); the headers of the range's blocks that are not final
   (plus the range's last one), checked for parent-hash continuity with the stored chain; each log's blockHash
   against them; with `network.scan_native`, the bodies of every block of the range and the receipts of the matched
   transactions. A disagreement between two answers means the node reorged mid-step: ChainMoved, nothing written.
6. The distinct recipients looked up in ONE query (`address = ANY(...)` on the unique index), only the logs to our
   addresses decoded in full; Transfer rows inserted in ONE statement (ON CONFLICT DO NOTHING: the unique (network,
   tx, log, block hash) makes it exactly-once), final at once when their block already is.
7. Finality (finality.transfers_settle), pruning of the stored chain well below the final block, AddressActivity
   rows (one per affected address: transfer seen, final or orphaned), the cursor saved.

After COMMIT, if AddressActivity rows were written, the payments side is told by task NAME (never an import):
`payments.tasks.process_address_activity`.
"""
import logging
import sys
import threading
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from gateway.celery import task_wake
from wallets.models import AddressActivity, ChainCursor, Network, ScannedBlock, SendingAddress, Token, Transfer

from . import finality, reorg
from .decode import (BLACKLIST_EVENTS, SCANNED_TOPICS, TRANSFER_TOPIC, decode_blacklist_log,  # noqa: F401
                     decode_transfer_log)
from .reorg import ChainMoved, Header, headers_fetch, scanned_blocks_store
from .rpc import RpcClient, RpcError, RpcUnavailable
from .selectors import chain_cursor_get, deposit_address_ids_by_address
from .services import chain_cursor_init, issuer_blacklist_alerts_record

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
#
# The range is in blocks, and follows two signals: a provider's refusal (a range or result cap: shrink to its
# suggestion or half, then grow back by 1/8 after each full-size success) and the number of logs an answer held
# (more than LOGS_PER_STEP: shrink so that the next answer holds about that many). A process starts each network at
# INITIAL_LOG_RANGE blocks and doubles while answers stay small (slow start): a node without a result cap (anvil,
# a node of our own) on a busy chain would otherwise answer max_log_range blocks at once, millions of logs parsed
# in memory in one piece.

INITIAL_LOG_RANGE = 16
LOGS_PER_STEP = 10_000  # about this many logs per eth_getLogs answer at most (~20 MB parsed), once the density is known


@dataclass
class _LogRange:
    size: int
    capped: bool = False  # a provider refused a range: grow back by 1/8, never double again


_log_ranges: dict[int, _LogRange] = {}
_log_ranges_lock = threading.Lock()


def log_range_get(network: Network) -> int:
    ceiling = max(1, network.max_log_range)
    with _log_ranges_lock:
        state = _log_ranges.get(network.id)
        return max(1, min(state.size if state else INITIAL_LOG_RANGE, ceiling))


def _log_range_shrink(network: Network, size: int) -> None:
    with _log_ranges_lock:
        _log_ranges[network.id] = _LogRange(size=max(1, size), capped=True)


def _log_range_succeeded(network: Network, used: int, logs: int = 0) -> None:
    """After an answer of `logs` logs for `used` blocks: shrink when it held more than LOGS_PER_STEP; otherwise grow,
    only after a request of the full current size (a short range at the head says nothing about the provider's
    cap), doubling until a provider first refused a range, by 1/8 after, and never beyond LOGS_PER_STEP logs at the
    density just seen."""
    ceiling = max(1, network.max_log_range)
    with _log_ranges_lock:
        state = _log_ranges.setdefault(network.id, _LogRange(size=min(INITIAL_LOG_RANGE, ceiling)))
        current = max(1, min(state.size, ceiling))
        if logs > LOGS_PER_STEP:
            state.size = max(1, used * LOGS_PER_STEP // logs)
        elif used >= current:
            grown = current + max(1, current // RANGE_GROWTH_DIVISOR) if state.capped else current * 2
            if logs:
                grown = min(grown, max(current, used * LOGS_PER_STEP // logs))
            state.size = min(ceiling, grown)


def log_ranges_forget() -> None:
    """Start every network at its initial range again, and drop the prefetches and their workers (tests)."""
    with _log_ranges_lock:
        _log_ranges.clear()
    with _prefetch_lock:
        for entry in _prefetched.values():
            entry.future.cancel()
        _prefetched.clear()
        for pool in _prefetch_pools.values():  # network ids come and go in tests: no idle worker per old id
            pool.shutdown(wait=False, cancel_futures=True)
        _prefetch_pools.clear()


# --- Prefetching the next range of a catch-up -------------------------------------------------------------------
#
# While a step writes (PostgreSQL's time), a thread already fetches the logs of the next range, if that range is
# entirely final: final blocks cannot change, so logs fetched early are the logs the next step would fetch. The next
# step uses them only if it starts exactly where they start (same cursor, same contracts) and may scan that far;
# anything else (a rewind, another scanner's steps, a failed fetch) falls back to the ordinary fetch. Only
# `network_scan` turns it on, and drops what is left when it returns.


@dataclass
class _Prefetch:
    start: int
    end: int
    contracts: tuple[str, ...]
    future: Future


# One single-worker executor per network id: a network's step never waits behind another network's prefetch
# (`manage.py watch` steps several networks, each holding its transaction and advisory lock while it waits).
_prefetch_pools: dict[int, ThreadPoolExecutor] = {}
_prefetched: dict[int, _Prefetch] = {}
_prefetch_lock = threading.Lock()


def _prefetch_start(*, network: Network, client, start: int, end: int, contracts: list[str]) -> None:
    with _prefetch_lock:
        pool = _prefetch_pools.get(network.id)
        if pool is None:
            pool = _prefetch_pools[network.id] = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"scan-prefetch-{network.code}")
        previous = _prefetched.pop(network.id, None)
        if previous is not None:
            previous.future.cancel()
        _prefetched[network.id] = _Prefetch(
            start=start, end=end, contracts=tuple(contracts),
            future=pool.submit(client.get_logs, start, end, contracts, SCANNED_TOPICS),
        )


def _prefetch_take(*, network: Network, start: int, end: int, contracts: list[str]) -> tuple[int, list[dict]] | None:
    """(end, logs) prefetched for exactly this start and contracts, ending at or before `end`; None otherwise."""
    with _prefetch_lock:
        entry = _prefetched.pop(network.id, None)
    if entry is None:
        return None
    if entry.start != start or entry.end > end or entry.contracts != tuple(contracts):
        entry.future.cancel()
        return None
    try:
        return entry.end, entry.future.result()
    except Exception as exc:  # RpcError, RpcUnavailable ...: the ordinary fetch adapts or reports it
        logger.info("%s: prefetched eth_getLogs [%d, %d] failed (%s); fetching again", network.code, entry.start,
                    entry.end, exc)
        return None


def _prefetch_drop(network: Network) -> None:
    with _prefetch_lock:
        entry = _prefetched.pop(network.id, None)
    if entry is not None:
        entry.future.cancel()


# --- One step ------------------------------------------------------------------------------------------------------


def scan_step(*, network: Network, client: RpcClient | None = None, max_blocks: int | None = None,
              prefetch_to: int | None = None) -> StepResult:
    """Process the next range of `network` (at most `max_blocks` blocks) in one transaction; see the module doc.

    Never raises for a node problem: the result says what happened and whether to back off (ImproperlyConfigured
    when no client is given and the network has no RPC URL; database errors propagate). Two scanners of one
    network never both work (the advisory lock; the cursor row lock behind it), and even if they did, the unique
    constraint on transfers would credit each transfer once.

    `prefetch_to` (network_scan): the last block the caller means to scan; while this step writes, the logs of the
    next range are fetched in a thread when that range is final (see _prefetch_start)."""
    if max_blocks is not None and max_blocks < 1:
        raise ValueError("max_blocks must be at least 1")
    if client is None:
        client = RpcClient.for_network(network)
    try:
        with transaction.atomic():
            if not _lock_try(network=network):
                return StepResult(network=network.code, status=Status.LOCKED)
            result = _step(network=network, client=client, max_blocks=max_blocks, prefetch_to=prefetch_to)
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
    task_wake(PAYMENTS_ACTIVITY_TASK)  # the payments beat fallback consumes the queue rows anyway


def _cursor_lock(*, network: Network, head: int) -> ChainCursor:
    cursor = ChainCursor.objects.select_for_update().filter(network=network).first()
    if cursor is None:
        chain_cursor_init(network=network, block_number=max(-1, head - NEW_CURSOR_BLOCKS_BEHIND_HEAD - 1))
        cursor = ChainCursor.objects.select_for_update().get(network=network)
    return cursor


def _step(*, network: Network, client, max_blocks: int | None, prefetch_to: int | None) -> StepResult:
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
                              end=min(head, cursor.block_number + limit), final=final, now=now,
                              prefetch_to=prefetch_to)
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
        _activity_insert(addresses)
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
                now: datetime, prefetch_to: int | None = None) -> _RangeOutcome:
    tokens = {token.contract_address.lower(): token for token in Token.objects.filter(network=network)}
    logs: list[dict] = []
    if tokens:
        end, logs = _logs_fetch(network=network, client=client, start=start, end=end, contracts=sorted(tokens))
        if prefetch_to is not None and not network.scan_native:
            next_end = min(final, prefetch_to, end + log_range_get(network))
            if next_end > end:
                _prefetch_start(network=network, client=client, start=end + 1, end=next_end, contracts=sorted(tokens))

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

    # The hot path of a busy chain: most logs pay someone else. A first pass takes each Transfer-shaped log's
    # recipient (and checks block hashes); only the logs paying one of our addresses are decoded in full.
    blacklist: list[dict] = []
    recipients = _log_recipients(logs=logs, hashes=hashes, blacklist=blacklist)
    logs = []  # the parsed answer is the largest thing a step holds: let the logs nobody wants go
    if blacklist:
        _blacklist_alerts(network=network, logs=blacklist, tokens=tokens, hashes=hashes, start=start, end=end)
    natives = _native_candidates(bodies=bodies, ours=_sending_addresses(network)) if bodies else []
    address_ids = deposit_address_ids_by_address(
        addresses={recipient for recipient, _ in recipients} | {c.to_address for c in natives}
    )
    ours = [log for recipient, log in recipients if recipient in address_ids]
    del recipients
    candidates = _log_candidates(logs=ours, tokens=tokens, hashes=hashes, start=start, end=end) + natives
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
    prefetched = _prefetch_take(network=network, start=start, end=end, contracts=contracts)
    if prefetched is not None:
        _log_range_succeeded(network, prefetched[0] - start + 1, len(prefetched[1]))
        return prefetched
    while True:
        try:
            logs = client.get_logs(start, end, contracts, SCANNED_TOPICS)
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
        _log_range_succeeded(network, end - start + 1, len(logs))
        return end, logs


def _log_recipients(*, logs: list[dict], hashes: dict[int, str],
                    blacklist: list[dict] | None = None) -> list[tuple[str, dict]]:
    """(recipient, log) of every log shaped like an ERC-20 Transfer (three topics, not removed), the recipient taken
    from topic 2 as lower-case 0x hex without validating the rest (`_log_candidates` does, for the logs of our
    addresses). A log of a block whose header the step holds must carry that header's hash (ChainMoved if not).
    The issuers' blacklist logs (one or two topics) go to `blacklist`: the Transfer path pays nothing for them."""
    pairs = []
    numbers: dict[str, int] = {}  # blockNumber hex -> int, once per block
    for log in logs:
        topics = log.get("topics")
        if not topics or len(topics) != 3 or log.get("removed"):
            if topics and blacklist is not None and len(topics) < 3 and str(topics[0]).lower() in BLACKLIST_EVENTS:
                blacklist.append(log)
            continue
        raw_number = log.get("blockNumber")
        number = numbers.get(raw_number)
        if number is None:
            try:
                number = numbers[raw_number] = int(raw_number, 16)
            except (TypeError, ValueError):
                continue  # a pending log (null block fields) or garbage
        known = hashes.get(number)
        if known is not None and known != str(log.get("blockHash")).lower():
            raise ChainMoved(f"a log of block {number} has hash {log.get('blockHash')}, the block has {known}")
        recipient = topics[2]
        if isinstance(recipient, str) and len(recipient) == 66:
            pairs.append(("0x" + recipient[26:].lower(), log))
    return pairs


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
        if amount == 0:
            # A zero-value Transfer moves nothing: anyone can emit one to any address (transferFrom(x, ours, 0), the
            # "address poisoning" spam of BSC and Ethereum). Never a payment, never a row.
            continue
        candidates.append(_Candidate(
            token=token, tx_hash=tx_hash.lower(), log_index=log_index, block_number=block_number,
            block_hash=block_hash, from_address=sender.lower(), to_address=recipient.lower(), amount=amount,
        ))
    return candidates


def _blacklist_alerts(*, network: Network, logs: list[dict], tokens: dict[str, Token], hashes: dict[int, str],
                      start: int, end: int) -> int:
    """Issuer blacklist logs of the range naming one of our deposit addresses or sending addresses (the hot wallet):
    an IssuerBlacklistAlert each, in this step's transaction (wallets.chain.services). Others are ignored: issuers
    blacklist addresses every day."""
    decoded = []
    for log in logs:
        fields = decode_blacklist_log(log)
        if fields is None:
            continue
        token_address, event, address, block_number, block_hash, tx_hash, log_index = fields
        token = tokens.get(token_address)
        if token is None or not start <= block_number <= end:
            continue
        known = hashes.get(block_number)
        if known is not None and known != block_hash:
            raise ChainMoved(f"a log of block {block_number} has hash {block_hash}, the block has {known}")
        decoded.append((token, event, address, block_number, block_hash, tx_hash, log_index))
    if not decoded:
        return 0
    deposits = deposit_address_ids_by_address(addresses={d[2] for d in decoded})
    sending = _sending_addresses(network)
    found = []
    for token, event, address, block_number, block_hash, tx_hash, log_index in decoded:
        if address in deposits:
            kind, deposit_address_id = "deposit", deposits[address]
        elif address in sending:
            kind, deposit_address_id = "hot", None
        else:
            continue
        found.append(dict(token=token, event=event, address=address, kind=kind, deposit_address_id=deposit_address_id,
                          tx_hash=tx_hash, log_index=log_index, block_number=block_number, block_hash=block_hash))
    return issuer_blacklist_alerts_record(network=network, found=found) if found else 0


def _sending_addresses(network: Network) -> set[str]:
    """The network's own sending addresses (the hot wallet, deposit sending addresses), lowercase."""
    return {a.lower() for a in SendingAddress.objects.filter(network=network).values_list("address", flat=True)}


def _native_candidates(*, bodies: list[Header], ours: frozenset[str] | set[str] = frozenset()) -> list[_Candidate]:
    """Native value transfers of the bodies, except those sent by one of `ours` (the gateway's own sending addresses:
    the top-up fallback's gas top-ups to a deposit address are not a customer's deposit)."""
    candidates = []
    for body in bodies:
        for tx in body.transactions:
            to, value = tx.get("to"), int(tx.get("value") or "0x0", 16)
            if not to or value <= 0 or tx["from"].lower() in ours:
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
        rows.append(c)
    if rows:
        _transfers_insert_sql(network=network, rows=rows, address_ids=address_ids, final=final, now=now)
    return len(rows), {address_ids[c.to_address] for c in rows}


def _column(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _transfers_insert_sql(*, network: Network, rows: list[_Candidate], address_ids: dict[str, int], final: int,
                          now: datetime) -> None:
    """INSERT the rows in ONE statement whatever their number: each column travels as one comma-separated text
    parameter split by PostgreSQL (string_to_array + unnest), which costs a fraction of building model instances
    or adapting Python lists (docs/benchmarks.md, chain ingest). Every value is a hex string or an
    integer of our own making (no comma can appear); amounts go through text to NUMERIC, exactly. A row that already
    exists (a concurrent step, a redone step) is skipped by the unique constraint, as bulk_create(ignore_conflicts)
    did."""
    table = connection.ops.quote_name(Transfer._meta.db_table)
    columns = ", ".join(_column(Transfer, name) for name in (
        "network", "token", "tx_hash", "log_index", "block_number", "block_hash", "from_address", "to_address",
        "deposit_address", "amount_base_units", "seen_at", "finalized_at"))
    values = [
        ",".join(str(c.token.id) if c.token is not None else "-" for c in rows),
        ",".join(c.tx_hash for c in rows),
        ",".join(str(c.log_index) for c in rows),
        ",".join(str(c.block_number) for c in rows),
        ",".join(c.block_hash for c in rows),
        ",".join(c.from_address for c in rows),
        ",".join(c.to_address for c in rows),
        ",".join(str(address_ids[c.to_address]) for c in rows),
        ",".join(str(int(c.amount)) for c in rows),
        ",".join("t" if c.block_number <= final else "f" for c in rows),
    ]
    if any("," in c.tx_hash + c.block_hash + c.from_address + c.to_address for c in rows):
        raise ValueError("a transfer field holds a comma")  # decode_transfer_log only yields hex: never happens
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) "
            "SELECT %s, NULLIF(t, '-')::bigint, h, i::integer, n::bigint, bh, f, r, d::bigint, a::numeric, %s, "
            "CASE WHEN fin = 't' THEN %s::timestamptz END "
            "FROM unnest(" + ", ".join(["string_to_array(%s, ',')"] * len(values)) + ") "
            "AS x(t, h, i, n, bh, f, r, d, a, fin) ON CONFLICT DO NOTHING",
            [network.id, now, now, *values],
        )


def _activity_insert(address_ids: set[int]) -> None:
    """One AddressActivity row per address, in ONE statement (the ids as one text parameter)."""
    table = connection.ops.quote_name(AddressActivity._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({_column(AddressActivity, 'deposit_address')}, "
            f"{_column(AddressActivity, 'created')}) SELECT unnest(string_to_array(%s, ','))::bigint, %s",
            [",".join(str(a) for a in sorted(address_ids)), timezone.now()],
        )


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
        step = scan_step(network=network, client=client, max_blocks=max_blocks,
                         prefetch_to=to_block if to_block is not None else sys.maxsize)
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
    _prefetch_drop(network)
    summary.seconds = time.monotonic() - started
    return summary
