"""Finality of a network's blocks and of the transfers recorded in them.

A block is final by the network's rule: the node's `finalized` or `safe` tag, or `head - confirmations`. A transfer
becomes final (`finalized_at`, set once) when its block is at or below the final block AND its block hash is the
canonical one we hold for that number: the ScannedBlock row, or, for a final block we hold no row of (it was scanned
when already final, or pruned), the node's own hash (a final block's hash cannot change).
"""
from dataclasses import dataclass, field
from datetime import datetime

from wallets.models import Network, ScannedBlock, Transfer

from .reorg import headers_fetch

# How far below the lower of the last final block we saw and the node's final block the sweep looks for transfers
# that are neither final nor orphaned. Transfers are recorded non-final only above the final block of their step,
# and the final block only moves up, so a margin this wide covers a node that lags the one we used before.
SETTLE_MARGIN_BLOCKS = 1024


def final_block_number(*, network: Network, client, head: int) -> int:
    """The highest final block by the network's rule, never above `head` (-1 when nothing is final yet)."""
    if network.finality == Network.Finality.CONFIRMATIONS:
        return max(-1, head - network.confirmations)
    block = client.get_block(network.finality)  # "finalized" or "safe"
    if not block:
        return -1
    return min(head, int(block["number"], 16) if isinstance(block["number"], str) else int(block["number"]))


@dataclass
class SettleOutcome:
    finalized: int = 0
    orphaned: int = 0
    addresses: set[int] = field(default_factory=set)


def transfers_settle(*, network: Network, client, up_to: int, final: int, floor: int, now: datetime) -> SettleOutcome:
    """Finalize (or orphan, when their block is no longer ours) the open transfers of blocks (`floor`, `up_to`].

    `up_to` is the cursor: the ScannedBlock rows up to it are the canonical chain as far as we know. A transfer whose
    block hash differs from that chain's is orphaned (it was left behind by a rescan after `chain_cursor_rewind`);
    one that matches becomes final when its block is at or below `final`. Call inside the step's transaction."""
    outcome = SettleOutcome()
    pending = list(
        Transfer.objects.filter(
            network=network, finalized_at__isnull=True, orphaned_at__isnull=True,
            block_number__gt=floor, block_number__lte=up_to,
        ).values_list("id", "block_number", "block_hash", "deposit_address_id")
    )
    if not pending:
        return outcome
    numbers = {number for _, number, _, _ in pending}
    canonical = dict(
        ScannedBlock.objects.filter(network=network, number__in=numbers).values_list("number", "hash")
    )
    missing = sorted(n for n in numbers if n not in canonical and n <= final)
    if missing:
        for header in headers_fetch(client=client, numbers=missing):
            if header is not None:
                canonical[header.number] = header.hash

    finalize_ids, orphan_ids = [], []
    for transfer_id, number, block_hash, address_id in pending:
        known = canonical.get(number)
        if known is None:
            continue  # not final, and no row to judge it by yet: a later step will
        if known != block_hash:
            orphan_ids.append(transfer_id)
            outcome.addresses.add(address_id)
        elif number <= final:
            finalize_ids.append(transfer_id)
            outcome.addresses.add(address_id)
    if finalize_ids:
        outcome.finalized = Transfer.objects.filter(id__in=finalize_ids, finalized_at__isnull=True).update(
            finalized_at=now
        )
    if orphan_ids:
        outcome.orphaned = Transfer.objects.filter(id__in=orphan_ids, orphaned_at__isnull=True).update(
            orphaned_at=now
        )
    return outcome
