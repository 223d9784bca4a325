"""The hook for hot wallet floors: the lowest balance each hot wallet should hold before it is topped up from cold.

The floors themselves belong to settlements (hot/cold wallet management, built beside this on another branch). Until
they land, no floor is known: `/metrics` exports the hot wallets' balances without `gateway_hot_wallet_floor`, the
operations page shows "not set", and the alert rule `HotWalletBelowFloor` (ops/prometheus/alerts.yml) stays silent.
When they land, make this function return them (one query): nothing else here changes."""


def hot_wallet_floors() -> dict[tuple[int, int | None], int]:
    """{(network id, token id or None for the native coin): floor in base units} of every hot wallet with one."""
    return {}
