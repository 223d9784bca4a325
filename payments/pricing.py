"""What a customer owes, in a token's base units, and how a wallet is told (EIP-681). Integers only."""
import functools

from eth_utils import to_checksum_address as _to_checksum_address

# EIP-55 costs a keccak hash per call, and an intent's payment URIs need one per token and one per recipient: the same
# few token contracts and the intent's one address come back again and again (13% of a creation's CPU uncached).
to_checksum_address = functools.lru_cache(maxsize=4096)(_to_checksum_address)

# Minor-unit exponent of each fiat currency an intent may be priced in.
FIAT_EXPONENTS = {"usd": 2}
SUPPORTED_CURRENCIES = tuple(FIAT_EXPONENTS)


def amount_due_base_units(*, amount_minor: int, currency: str, token_decimals: int) -> int:
    """A stablecoin pegged 1:1 to `currency`: shift the decimal point, rounding up so the merchant is never short."""
    exponent = FIAT_EXPONENTS[currency]
    if token_decimals >= exponent:
        return amount_minor * 10 ** (token_decimals - exponent)
    divisor = 10 ** (exponent - token_decimals)
    return -(-amount_minor // divisor)


def minor_from_base_units(*, amount_base_units: int, currency: str, token_decimals: int) -> int:
    """The fiat value of a stablecoin amount, rounded down (a customer never gets credit for dust)."""
    exponent = FIAT_EXPONENTS[currency]
    if token_decimals >= exponent:
        return amount_base_units // 10 ** (token_decimals - exponent)
    return amount_base_units * 10 ** (exponent - token_decimals)


def scientific(n: int) -> str:
    """An exact integer in EIP-681's scientific notation: 12340000000000000000 -> '1.234e19'."""
    if n < 0:
        raise ValueError("negative amount")
    digits = str(n)
    significant = digits.rstrip("0") or "0"
    exponent = len(digits) - 1 if n else 0
    if exponent < 3:
        return digits
    mantissa = significant[0] + ("." + significant[1:] if len(significant) > 1 else "")
    return f"{mantissa}e{exponent}"


def erc20_payment_uri(*, token_address: str, chain_id: int, recipient: str, amount_base_units: int) -> str:
    """EIP-681 `transfer` call: ethereum:<token>@<chainId>/transfer?address=<to>&uint256=<amount>."""
    return (
        f"ethereum:{to_checksum_address(token_address)}@{chain_id}/transfer"
        f"?address={to_checksum_address(recipient)}&uint256={scientific(amount_base_units)}"
    )
