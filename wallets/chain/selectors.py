"""Reads of the chain watcher: where each network's scanner stands, and the transfers recorded for an address."""
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from wallets.models import ChainCursor, DepositAddress, Network, Transfer


def chain_cursor_get(*, network: Network) -> ChainCursor | None:
    return ChainCursor.objects.filter(network=network).first()


@dataclass(frozen=True)
class ChainStatus:
    network: str
    block_number: int | None  # the cursor: last block processed (None: never scanned)
    head_number: int | None
    finalized_number: int | None
    lag: int | None  # head minus cursor, as last seen by the scanner
    updated: datetime | None

    def as_json(self) -> dict:
        return {
            "network": self.network, "block_number": self.block_number, "head_number": self.head_number,
            "finalized_number": self.finalized_number, "lag": self.lag,
            "updated": self.updated.isoformat() if self.updated else None,
        }


def chain_status_list(*, active_only: bool = True) -> list[ChainStatus]:
    """One row per network: its cursor and lag (head minus cursor) as the scanner last saw them."""
    networks = Network.objects.select_related("cursor").order_by("livemode", "code")
    if active_only:
        networks = networks.filter(is_active=True)
    statuses = []
    for network in networks:
        cursor = getattr(network, "cursor", None)
        statuses.append(ChainStatus(
            network=network.code,
            block_number=cursor.block_number if cursor else None,
            head_number=cursor.head_number if cursor else None,
            finalized_number=cursor.finalized_number if cursor else None,
            lag=cursor.lag if cursor else None,
            updated=cursor.updated if cursor else None,
        ))
    return statuses


def transfers_for_address(*, address: str, network: Network | None = None,
                          include_orphaned: bool = True) -> QuerySet[Transfer]:
    """The transfers recorded to a deposit address (lower-case 0x hex), oldest first."""
    transfers = Transfer.objects.filter(to_address=address.lower()).select_related("network", "token")
    if network is not None:
        transfers = transfers.filter(network=network)
    if not include_orphaned:
        transfers = transfers.filter(orphaned_at__isnull=True)
    return transfers.order_by("block_number", "log_index", "id")


def deposit_address_ids_by_address(*, addresses: Collection[str]) -> dict[str, int]:
    """{address: id} of those of `addresses` (lower-case 0x hex) that are ours: ONE query on the unique index,
    whatever their number, and nothing else loaded (there may be millions of deposit addresses).

    The addresses travel as ONE comma-separated text parameter split by PostgreSQL: adapting a Python list of
    100,000 strings to an array costs seconds in the driver, joining them milliseconds. A string holding a comma
    (never an address) can only split into strings that are looked up for nothing: callers match on the whole
    string."""
    if not addresses:
        return {}
    table = connection.ops.quote_name(DepositAddress._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT address, id FROM {table} WHERE address = ANY(string_to_array(%s, ','))",
                       [",".join(addresses)])
        return dict(cursor.fetchall())
