"""Fees of outgoing transactions: what the market asks now, and the replacement rule.

EIP-1559 chains (Network.fee_model "eip1559"): maxPriorityFeePerGas from eth_maxPriorityFeePerGas (1 gwei when the
node has no opinion), maxFeePerGas = 2 * the latest base fee + the tip (room for six full blocks of base-fee rises).
Legacy chains (BSC): gasPrice = eth_gasPrice.

Replacement (same nonce): geth, anvil, BSC and most nodes accept it only when every fee field rises by at least 10 %
(geth's default `txpool.pricebump`); we raise each by 12.5 % plus 1 wei (`fee_bump`), or to what the market asks now
if that is higher.
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


def fees_replacement(*, previous: Fees, market: Fees) -> Fees:
    """Fees that replace `previous` (each field bumped, `fee_bump`) and pay at least what the market asks."""
    if previous.gas_price is not None:
        return Fees(gas_price=max(fee_bump(previous.gas_price), market.gas_price or 0))
    tip = max(fee_bump(previous.max_priority_fee_per_gas), market.max_priority_fee_per_gas or 0)
    max_fee = max(fee_bump(previous.max_fee_per_gas), market.max_fee_per_gas or 0, tip)
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
