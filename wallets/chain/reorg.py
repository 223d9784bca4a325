"""The stored hash chain against the node's: block headers, reorg detection and the walk back to the common ancestor.

anvil 1.7.1 (and some providers) re-mine without ever sending `removed: true`, so nothing here trusts that flag:
a reorg is a block number whose hash on the node differs from the one we stored.
"""
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from wallets.models import ChainCursor, Network, ScannedBlock, Transfer

logger = logging.getLogger(__name__)

HEADER_BATCH = 100  # eth_getBlockByNumber calls per JSON-RPC batch, headers only
BODY_BATCH = 20  # the same with full transactions (bodies are large)
WALK_BACK_FIRST_BATCH = 8  # most reorgs are one or two blocks deep; the batch doubles as the walk goes deeper
WALK_BACK_MAX_BATCH = 128


class ChainMoved(Exception):
    """The node's chain changed between two calls of one step (a reorg mid-fetch): abort the step, write nothing,
    and let the next step start over from the cursor."""


@dataclass(frozen=True)
class Header:
    number: int
    hash: str
    parent_hash: str
    transactions: tuple = ()  # full transaction objects when fetched with bodies


def _int(value) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def header_from_block(block: dict, *, with_transactions: bool = False) -> Header:
    return Header(
        number=_int(block["number"]),
        hash=block["hash"].lower(),
        parent_hash=block["parentHash"].lower(),
        transactions=tuple(block.get("transactions") or ()) if with_transactions else (),
    )


def headers_fetch(*, client, numbers: Sequence[int], full_txs: bool = False) -> list[Header | None]:
    """The node's blocks of `numbers`, in order (None where the node has no such block), in JSON-RPC batches."""
    size = BODY_BATCH if full_txs else HEADER_BATCH
    headers: list[Header | None] = []
    for i in range(0, len(numbers), size):
        chunk = numbers[i:i + size]
        blocks = client.batch([("eth_getBlockByNumber", [hex(n), full_txs]) for n in chunk])
        for number, block in zip(chunk, blocks):
            if block is None:
                headers.append(None)
                continue
            header = header_from_block(block, with_transactions=full_txs)
            if header.number != number:
                raise ChainMoved(f"asked for block {number}, the node answered block {header.number}")
            headers.append(header)
    return headers


def scanned_blocks_store(*, network: Network, headers: Sequence[Header]) -> None:
    """Upsert the headers as the stored hash chain (a rescan after a rewind may meet rows of the same numbers)."""
    if not headers:
        return
    ScannedBlock.objects.bulk_create(
        [ScannedBlock(network=network, number=h.number, hash=h.hash, parent_hash=h.parent_hash) for h in headers],
        update_conflicts=True, unique_fields=["network", "number"], update_fields=["hash", "parent_hash"],
    )


@dataclass
class ReorgOutcome:
    waiting: bool = False  # the node is behind our cursor but agrees with us up to its head: nothing to do yet
    depth: int = 0  # how many blocks the cursor moved back (0: no reorg)
    ancestor: int | None = None
    orphaned: int = 0
    orphaned_final: int = 0  # orphaned transfers that had been final: finality was violated (or the node lies)
    addresses: set[int] = field(default_factory=set)


def chain_verify(*, network: Network, cursor: ChainCursor, client, head: int, now: datetime) -> ReorgOutcome:
    """Compare our hash at the cursor (or at the node's head, if the node is behind) with the node's, and on a
    divergence walk back to the common ancestor: orphan every transfer above it, drop the stored blocks above it,
    move the cursor (in memory; the caller saves it) back to it. Call inside the step's transaction.

    Checking one block is enough: the hash of a block commits to all its ancestors."""
    outcome = ReorgOutcome()
    if cursor.block_number < 0:
        return outcome
    check = min(cursor.block_number, head)
    stored = ScannedBlock.objects.filter(network=network, number=check).values_list("hash", flat=True).first()
    node = headers_fetch(client=client, numbers=[check])[0]
    if node is None:
        raise ChainMoved(f"the node has no block {check} although its head is {head}")

    if stored is None:
        if check == cursor.block_number:
            # The first step after chain_cursor_init / chain_cursor_rewind: the node's block becomes our anchor.
            scanned_blocks_store(network=network, headers=[node])
            cursor.block_hash = node.hash
        else:
            outcome.waiting = True  # cannot compare below our window; the node has to catch up first
        return outcome
    if stored == node.hash:
        outcome.waiting = check < cursor.block_number
        return outcome

    ancestor, ancestor_hash = _common_ancestor(network=network, client=client, at_or_below=check)
    return _rewind_to_ancestor(
        network=network, cursor=cursor, ancestor=ancestor, ancestor_hash=ancestor_hash, now=now, outcome=outcome
    )


def _common_ancestor(*, network: Network, client, at_or_below: int) -> tuple[int, str]:
    """The highest stored block whose hash the node has too. If none of the stored window matches (a reorg deeper
    than the window: it keeps 64 blocks below the final one, so only a broken node or finality gets here), the block
    below the window, with an unknown hash."""
    stored = ScannedBlock.objects.filter(network=network, number__lte=at_or_below).order_by("-number")
    offset, batch, lowest = 0, WALK_BACK_FIRST_BATCH, at_or_below
    while True:
        chunk = list(stored.values_list("number", "hash")[offset:offset + batch])
        if not chunk:
            logger.error(
                "%s: reorg deeper than the stored hash chain (no common ancestor at or above block %d); "
                "rescanning from block %d", network.code, lowest, lowest,
            )
            return lowest - 1, ""
        nodes = headers_fetch(client=client, numbers=[number for number, _ in chunk])
        for (number, block_hash), node in zip(chunk, nodes):
            if node is not None and node.hash == block_hash:
                return number, block_hash
        lowest = chunk[-1][0]
        offset += len(chunk)
        batch = min(batch * 2, WALK_BACK_MAX_BATCH)


def _rewind_to_ancestor(*, network: Network, cursor: ChainCursor, ancestor: int, ancestor_hash: str, now: datetime,
                        outcome: ReorgOutcome) -> ReorgOutcome:
    above = Transfer.objects.filter(network=network, block_number__gt=ancestor, orphaned_at__isnull=True)
    rows = list(above.values_list("id", "deposit_address_id", "finalized_at"))
    if rows:
        Transfer.objects.filter(id__in=[row_id for row_id, _, _ in rows]).update(orphaned_at=now)
    outcome.orphaned = len(rows)
    outcome.orphaned_final = sum(1 for _, _, finalized_at in rows if finalized_at is not None)
    outcome.addresses.update(address_id for _, address_id, _ in rows)
    ScannedBlock.objects.filter(network=network, number__gt=ancestor).delete()

    outcome.depth = cursor.block_number - ancestor
    outcome.ancestor = ancestor
    log = logger.critical if outcome.orphaned_final else logger.warning
    log(
        "%s: reorg, cursor %d -> common ancestor %d (%d blocks); %d transfers orphaned (%d of them had been final)",
        network.code, cursor.block_number, ancestor, outcome.depth, outcome.orphaned, outcome.orphaned_final,
    )
    cursor.block_number = ancestor
    cursor.block_hash = ancestor_hash
    return outcome
