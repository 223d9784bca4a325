"""The address-activity queue between the chain watcher (writes rows) and the payments app (consumes them).
Services: claiming locks the rows for the caller's transaction; completing deletes them in that same transaction."""
from .models import AddressActivity, DepositAddress, Transfer


def address_activity_claim(*, limit: int = 200, exclude_ids=()) -> dict[int, list[int]]:
    """Lock up to `limit` queue rows that no other consumer holds; {deposit_address_id: [row ids]}.
    Call inside a transaction; rows come back if it rolls back."""
    claimed: dict[int, list[int]] = {}
    rows = (
        AddressActivity.objects.select_for_update(skip_locked=True).exclude(id__in=list(exclude_ids))
        .order_by("id").values_list("id", "deposit_address_id")[:limit]
    )
    for row_id, address_id in rows:
        claimed.setdefault(address_id, []).append(row_id)
    # By address id: two consumers that lock the same addresses lock them in the same order (no deadlock).
    return dict(sorted(claimed.items()))


def address_activity_complete(*, row_ids: list[int]) -> None:
    AddressActivity.objects.filter(id__in=row_ids).delete()


def deposit_address_lock(*, deposit_address_id: int) -> DepositAddress:
    """Serialises everything that applies the transfers of one address. FOR NO KEY UPDATE, not FOR UPDATE: the
    scanner's new Transfer and AddressActivity rows reference the address, and PostgreSQL checks those foreign keys
    at COMMIT with a KEY SHARE lock, which FOR UPDATE would block (the scanner and the payments side would then
    deadlock, each holding an address the other needs); appliers of one address still exclude each other."""
    return DepositAddress.objects.select_for_update(no_key=True).get(pk=deposit_address_id)


def transfers_of_address(*, deposit_address_id: int) -> list[Transfer]:
    return list(
        Transfer.objects.filter(deposit_address_id=deposit_address_id)
        .select_related("network", "token")
        .order_by("block_number", "log_index", "id")
    )
