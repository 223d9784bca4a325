"""Fees of outgoing transactions: what the market asks now, and the replacement rule.

EIP-1559 chains (Network.fee_model "eip1559"): maxPriorityFeePerGas from eth_maxPriorityFeePerGas (1 gwei when the
node has no opinion), maxFeePerGas = 2 * the latest base fee + the tip (room for six full blocks of base-fee rises).
Legacy chains (BSC): gasPrice = eth_gasPrice.

Replacement (same nonce): geth, anvil, BSC and most nodes accept it only when every fee field rises by at least 10 %
(geth's default `txpool.pricebump`); we raise each by 12.5 % plus 1 wei (`fee_bump`), or to what the market asks now
if that is higher.

Ceiling (per network): a replacement never offers more than `Network.max_fee_multiple` (default 4) times the fees of
the transaction's first attempt, nor more than `Network.max_fee_per_gas_wei` per gas when set (`fees_ceiling`). What the
market asks is cut to the ceiling; when even the minimal bump would pass it, the transaction is not replaced: it waits
(the sender records an event and logs a warning).
"""
from dataclasses import dataclass

from .models import OutgoingTransaction

DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei
BASE_FEE_HEADROOM = 2


@dataclass(frozen=True)
class Fees:
    gas_price: int | None = None  # type 0
    max_fee_per_gas: int | None = None  # types 2 and 4
    max_priority_fee_per_gas: int | None = None

    def as_tx_fields(self) -> dict:
        if self.gas_price is not None:
            return {"gasPrice": self.gas_price}
        return {"maxFeePerGas": self.max_fee_per_gas, "maxPriorityFeePerGas": self.max_priority_fee_per_gas}

    def as_json(self) -> dict:
        return {k: str(v) for k, v in self.__dict__.items() if v is not None}


def fee_bump(value: int) -> int:
    """The lowest fee we offer to replace a transaction that offered `value`: >= value * 1.125 + 1 wei."""
    return value + (value + 7) // 8 + 1


def fees_market(*, client, tx_type: int) -> Fees:
    """The fees to offer now on the chain behind `client` for a transaction of `tx_type`."""
    from wallets.chain.rpc import RpcError

    if tx_type == OutgoingTransaction.Type.LEGACY:
        return Fees(gas_price=int(client.call("eth_gasPrice", []), 16))
    block = client.get_block("latest")
    base = int(block.get("baseFeePerGas") or "0x0", 16)
    try:
        tip = int(client.call("eth_maxPriorityFeePerGas", []), 16)
    except RpcError:
        tip = DEFAULT_PRIORITY_FEE
    return Fees(max_fee_per_gas=BASE_FEE_HEADROOM * base + tip, max_priority_fee_per_gas=tip)


def fees_bumped(previous: Fees) -> Fees:
    """The lowest fees a node accepts to replace `previous`: every field bumped (`fee_bump`)."""
    if previous.gas_price is not None:
        return Fees(gas_price=fee_bump(previous.gas_price))
    return Fees(max_fee_per_gas=fee_bump(previous.max_fee_per_gas),
                max_priority_fee_per_gas=fee_bump(previous.max_priority_fee_per_gas))


def fees_highest(fees: list[Fees]) -> Fees:
    """Each field's highest value over `fees` (the attempts of one nonce): what a replacement must outbid."""
    def top(name):
        values = [getattr(f, name) for f in fees if getattr(f, name) is not None]
        return max(values) if values else None
    return Fees(gas_price=top("gas_price"), max_fee_per_gas=top("max_fee_per_gas"),
                max_priority_fee_per_gas=top("max_priority_fee_per_gas"))


def fees_ceiling(*, first: Fees, multiple: int, max_fee_per_gas: int | None) -> Fees:
    """The most a replacement of a transaction whose first attempt offered `first` may offer: `multiple` times each
    field, and no more than `max_fee_per_gas` (when set) per gas."""
    return fees_capped(Fees(**{name: None if value is None else value * multiple
                                for name, value in first.__dict__.items()}), max_fee_per_gas=max_fee_per_gas)


def fees_capped(fees: Fees, *, max_fee_per_gas: int | None) -> Fees:
    """`fees` with every field cut to `max_fee_per_gas` (the network's ceiling per gas; None: unchanged)."""
    if max_fee_per_gas is None:
        return fees
    return Fees(**{name: None if value is None else min(value, int(max_fee_per_gas))
                   for name, value in fees.__dict__.items()})


def fees_within(fees: Fees, ceiling: Fees) -> bool:
    """True when no field of `fees` is above the same field of `ceiling`."""
    return all(value is None or limit is None or value <= limit
               for value, limit in ((fees.gas_price, ceiling.gas_price),
                                    (fees.max_fee_per_gas, ceiling.max_fee_per_gas),
                                    (fees.max_priority_fee_per_gas, ceiling.max_priority_fee_per_gas)))


def fees_replacement(*, previous: Fees, market: Fees, ceiling: Fees | None = None) -> Fees:
    """Fees that replace `previous` (each field bumped, `fee_bump`) and pay what the market asks, cut to `ceiling`
    (the bump itself is never cut: without it the node refuses the replacement; the caller checks it fits)."""
    ceiling = ceiling or Fees()

    def offer(bumped, asked, limit):
        asked = asked or 0
        return max(bumped, asked if limit is None else min(asked, limit))

    bumped = fees_bumped(previous)
    if previous.gas_price is not None:
        return Fees(gas_price=offer(bumped.gas_price, market.gas_price, ceiling.gas_price))
    tip = offer(bumped.max_priority_fee_per_gas, market.max_priority_fee_per_gas, ceiling.max_priority_fee_per_gas)
    max_fee = max(offer(bumped.max_fee_per_gas, market.max_fee_per_gas, ceiling.max_fee_per_gas), tip)
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
