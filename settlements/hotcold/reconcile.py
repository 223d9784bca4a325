"""Reconciliation of the operator's own wallets: the hot wallet (native coin and every token of its network) and each
cold address (its token) on the chain, at the last final block, against the ledger's hot_wallet / cold_wallet
account of that address and asset, to the base unit. Each difference is a `wallets.BalanceDiscrepancy` (wallet "hot"
or "cold", `address`), recorded once per distinct (address, asset, on-chain, ledger) pair, as for deposit addresses
(wallets/chain/reconcile.py, whose balance reader this uses).

The ledger moves with the transaction manager: a send is posted when it is recorded (before it is mined), what it
delivered and its gas when it ends. So a wallet is compared only when the ledger and the chain tell the same story
at the block read:
- the hot wallet: every transaction it sent has ended at or below that block, its gas is posted and, for a cold
  transfer, its final posting too; otherwise the hot wallet is skipped this run (`skipped`), not reported;
  and every recorded top-up is at or below that block;
- a cold address: no cold transfer to it is in flight.
Money that reaches the hot wallet from outside (an operator's top-up, tokens from the cold address) must be recorded
with `manage.py ledger topup`: until it is, reconciliation reports it as a difference, which is the point.
"""
import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

from django.db import transaction

from wallets.chain.finality import final_block_number
from wallets.chain.reconcile import balances_read
from wallets.chain.rpc import RpcClient, RpcError, RpcUnavailable
from wallets.models import BalanceDiscrepancy, Network, Token
from wallets.outgoing.models import OutgoingTransaction

from ..models import AccountKind, Sweep
from .models import ColdTransfer, HotColdSetting, HotWalletTopup
from .services import ENDED, gas_unposted_transactions, hot_wallet_of, wallet_balance

logger = logging.getLogger(__name__)
Wallet = BalanceDiscrepancy.Wallet


@dataclass
class WalletReconcileSummary:
    network: str
    status: str = "reconciled"  # reconciled | no_hot_wallet | no_final_block | unavailable | error
    block_number: int | None = None
    balances: int = 0  # (address, asset) pairs compared
    skipped: list[str] = field(default_factory=list)  # wallets not compared this run, and why
    differences: int = 0
    recorded: int = 0
    error: str = ""
    seconds: float = 0.0

    def as_json(self) -> dict:
        return {"network": self.network, "status": self.status, "block_number": self.block_number,
                "balances": self.balances, "skipped": self.skipped, "differences": self.differences,
                "recorded": self.recorded, "error": self.error, "seconds": round(self.seconds, 3)}


def _hot_busy(network: Network, address: str, block_number: int) -> str:
    """Why the hot wallet's ledger and chain may not agree at `block_number` yet ("" when they must)."""
    sent = OutgoingTransaction.objects.filter(network=network, from_address=address)
    if sent.exclude(status__in=ENDED).exists():
        return "a transaction of the hot wallet has not ended"
    if sent.filter(block_number__gt=block_number).exists():
        return "a transaction of the hot wallet ended above the block read"
    if gas_unposted_transactions().filter(network=network, from_address=address).exists():
        return "gas not posted yet"
    if ColdTransfer.objects.filter(network=network, status=ColdTransfer.Status.SENT).exists():
        return "a cold transfer is not settled yet"
    if Sweep.objects.filter(network=network, status=Sweep.Status.SENT).exists():
        return "a sweep is not settled yet"
    if HotWalletTopup.objects.filter(network=network, address=address, block_number__gt=block_number).exists():
        return "a recorded top-up is above the block read"
    return ""


def wallets_reconcile(*, network: Network, client: RpcClient) -> WalletReconcileSummary:
    """Compare the hot wallet and the cold addresses of `network` with the ledger at the last final block and record
    each new difference. Never raises for a node problem (the summary's status says it)."""
    started = time.monotonic()
    summary = WalletReconcileSummary(network=network.code)
    hot = hot_wallet_of(network)
    if hot is None:
        summary.status = "no_hot_wallet"
        return summary
    tokens = list(Token.objects.filter(network=network).order_by("id"))
    colds = {row.token_id: row.cold_address
             for row in HotColdSetting.objects.filter(token__network=network).order_by("id")}
    # One entry per address; balances_read reads the native coin and every token of each.
    addresses = [SimpleNamespace(id=(Wallet.HOT, hot.address), address=hot.address)]
    addresses += [SimpleNamespace(id=(Wallet.COLD, cold), address=cold) for cold in sorted(set(colds.values()))]
    try:
        block_number = final_block_number(network=network, client=client, head=client.block_number())
        if block_number < 0:
            summary.status = "no_final_block"
            return summary
        summary.block_number = block_number
        onchain = balances_read(client=client, addresses=addresses, tokens=tokens, block_number=block_number)
    except RpcUnavailable as exc:
        summary.status, summary.error = "unavailable", str(exc)
        logger.warning("reconcile wallets %s: RPC unavailable: %s", network.code, exc)
        return summary
    except RpcError as exc:
        summary.status, summary.error = "error", str(exc)
        logger.error("reconcile wallets %s: RPC error: %s", network.code, exc)
        return summary
    _record(network=network, hot_address=hot.address, colds=colds, onchain=onchain, block_number=block_number,
            summary=summary)
    summary.seconds = time.monotonic() - started
    return summary


@transaction.atomic
def _record(*, network: Network, hot_address: str, colds: dict[int, str], onchain: dict, block_number: int,
            summary: WalletReconcileSummary) -> None:
    # Checked after the balances were read: a transaction that ended meanwhile is seen here (or its block is above).
    busy = _hot_busy(network, hot_address, block_number)
    if busy:
        summary.skipped.append(f"hot {hot_address}: {busy}")
    in_flight = set(ColdTransfer.objects.filter(network=network, status=ColdTransfer.Status.SENT)
                    .values_list("to_address", flat=True))
    if HotWalletTopup.objects.filter(network=network, from_cold=True, block_number__gt=block_number).exists():
        in_flight |= set(colds.values())  # a move from cold to hot is recorded, not final yet
    found = []
    for ((wallet, address), token_id), balance in sorted(onchain.items(), key=lambda item: str(item[0])):
        if wallet == Wallet.HOT:
            if busy:
                continue
            kind = AccountKind.HOT_WALLET
        else:
            if colds.get(token_id) != address:
                continue  # a cold address is compared in its own token only
            if address in in_flight:
                summary.skipped.append(f"cold {address}: a transfer to or from it is not final yet")
                continue
            kind = AccountKind.COLD_WALLET
        summary.balances += 1
        recorded = wallet_balance(kind=kind, network=network, token_id=token_id, address=address)
        if balance != recorded:
            found.append(BalanceDiscrepancy(
                network=network, wallet=wallet, address=address, token_id=token_id, block_number=block_number,
                onchain_base_units=balance, recorded_base_units=recorded, difference_base_units=balance - recorded))
    summary.differences = len(found)
    if not found:
        return
    known = set(BalanceDiscrepancy.objects.filter(network=network, wallet__in=[Wallet.HOT, Wallet.COLD])
                .values_list("wallet", "address", "token_id", "onchain_base_units", "recorded_base_units"))
    new = [d for d in found
           if (d.wallet, d.address, d.token_id, d.onchain_base_units, d.recorded_base_units) not in known]
    BalanceDiscrepancy.objects.bulk_create(new, ignore_conflicts=True)
    summary.recorded = len(new)
    for d in new:
        logger.warning("reconcile wallets %s: %s %s asset %s on chain %d, ledger %d, difference %+d at block %d",
                       network.code, d.wallet, d.address, d.token_id or "native", d.onchain_base_units,
                       d.recorded_base_units, d.difference_base_units, block_number)
