"""The gateway's fee on a credit, in integers only.

Rounding rule: fee = floor(amount * bps / 10000) + fixed, capped at the amount; the merchant is credited
net = amount - fee. The percentage rounds down (in the merchant's favour), and fee + net == amount exactly, so no base
unit is created or destroyed."""


def fee_split(*, amount: int, fee_bps: int, fee_fixed: int) -> tuple[int, int]:
    """(fee, net) of a credit of `amount` base units: 0 <= fee <= amount and fee + net == amount."""
    if amount < 0 or not 0 <= fee_bps <= 10_000 or fee_fixed < 0:
        raise ValueError("amount, fee_bps (0..10000) and fee_fixed must not be negative")
    fee = min(amount * fee_bps // 10_000 + fee_fixed, amount)
    return fee, amount - fee
