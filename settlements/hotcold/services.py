"""Hot and cold (docs/money-out.md, "Hot and cold"): every write.

    cold_transfer_start       the surplus of the hot wallet above its ceiling to the cold address, through the
                              transaction manager, posted (Dr in_transit, Cr hot_wallet) in the same transaction
    cold_transfers_settle     cold transfers whose transaction ended: final -> Dr cold_wallet Cr in_transit;
                              failed / cancelled -> the send reversed (Dr hot_wallet Cr in_transit)
    outgoing_gas_post         the gas of every ended transaction of the hot wallet, once (Dr gas_spent Cr hot_wallet)
    hot_wallet_alerts_check   floor alerts of the hot wallet (tokens and native coin): raised once, resolved
    hot_wallet_topup_record   an operator's top-up of the hot wallet (from outside, or from the cold address),
                              checked on the chain first by topup_transaction_verify
    hot_cold_run              all of the above for every active network (the beat task)

Every state change of a ColdTransfer goes through `cold_transfer_transition` (row locked, allowed moves only, event
row in the same transaction). Every posting is idempotent by its source key, so each task may run twice, overlap
and be killed at any line.
"""
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import CharField, Exists, OuterRef, Q
from django.db.models.functions import Cast
from django.utils import timezone
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector

from audit.services import audit_record, model_snapshot
from gateway.errors import DomainError
from wallets.chain.rpc import RpcError, RpcUnavailable
from wallets.chain.scanner import rpc_client_or_none
from wallets.models import Network, Token
from wallets.outgoing.models import OutgoingTransaction, SendingAddress
from wallets.outgoing.services import outgoing_transaction_create

from ..models import AccountKind, JournalTransaction, LedgerAccount, LedgerBalance
from ..services import Posting, balances_lock, journal_transaction_post, ledger_account_get
from .models import ColdTransfer, ColdTransferEvent, HotColdSetting, HotWalletAlert, HotWalletTopup

logger = logging.getLogger(__name__)

Kind = JournalTransaction.Kind
TxStatus = OutgoingTransaction.Status
ENDED = (TxStatus.FINAL, TxStatus.FAILED, TxStatus.CANCELLED)
COLD_PURPOSE = "cold"
COLD_SOURCE = "cold_transfer"
GAS_SOURCE = "outgoing_tx"
TOPUP_SOURCE = "topup"
TRANSFER_SELECTOR = function_signature_to_4byte_selector("transfer(address,uint256)")
BALANCE_OF_SELECTOR = function_signature_to_4byte_selector("balanceOf(address)")
COLD_RETRY_SECONDS = 3600  # after a cold transfer reverted or was cancelled, the next waits this long

# The ColdTransfer state machine: from-status -> the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    ColdTransfer.Status.SENT: frozenset({ColdTransfer.Status.COMPLETED, ColdTransfer.Status.FAILED,
                                         ColdTransfer.Status.CANCELLED}),
    ColdTransfer.Status.COMPLETED: frozenset(),
    ColdTransfer.Status.FAILED: frozenset(),
    ColdTransfer.Status.CANCELLED: frozenset(),
}


class HotColdError(DomainError):
    pass


def erc20_transfer_data(*, to_address: str, amount_base_units: int) -> bytes:
    """Calldata of ERC-20 `transfer(to, amount)`. Whether the token returns a bool or nothing (USDT on Ethereum) does
    not matter: the receipt's status is what counts."""
    return TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to_address, amount_base_units])


def hot_wallet_of(network: Network) -> SendingAddress | None:
    return SendingAddress.objects.filter(network=network, purpose=SendingAddress.Purpose.HOT).first()


def wallet_account(*, kind: str, network: Network, token_id: int | None, address: str) -> LedgerAccount:
    """The hot_wallet / cold_wallet account of `address` in one asset (token_id None: the native coin)."""
    return ledger_account_get(kind=kind, network_id=network.id, token_id=token_id, address=address.lower(),
                              livemode=network.livemode)


def operator_account(*, kind: str, network: Network, token_id: int | None) -> LedgerAccount:
    return ledger_account_get(kind=kind, network_id=network.id, token_id=token_id, livemode=network.livemode)


def wallet_balance(*, kind: str, network: Network, token_id: int | None, address: str) -> int:
    """The running balance of a wallet account (0 when it has none yet); read, not created."""
    value = LedgerBalance.objects.filter(account__kind=kind, account__network=network, account__token_id=token_id,
                                         account__address=address.lower(), account__merchant__isnull=True
                                         ).values_list("balance", flat=True).first()
    return int(value or 0)


# --- Cold transfers ------------------------------------------------------------------------------------------------


@transaction.atomic
def cold_transfer_transition(*, cold: ColdTransfer, to: str, detail: dict | None = None) -> ColdTransfer:
    """The one way a cold transfer's status changes: lock, check the move from the status it has NOW, save, event."""
    locked = ColdTransfer.objects.select_for_update().get(pk=cold.pk)
    if to not in TRANSITIONS[locked.status]:
        raise HotColdError(code="cold_transfer_unexpected_state", status_code=409,
                           message=f"Cold transfer {locked.pk} is {locked.status}; it cannot become {to}.")
    ColdTransferEvent.objects.create(cold_transfer=locked, from_status=locked.status, to_status=to,
                                     detail=detail or {})
    locked.status = to
    locked.save(update_fields=["status", "updated"])
    cold.status = to
    return cold


@transaction.atomic
def cold_transfer_start(*, setting: HotColdSetting, onchain_balance: int | None = None) -> ColdTransfer | None:
    """Send the hot wallet's surplus above the token's ceiling to the cold address, or None (nothing above the
    ceiling, one already in flight, the last one failed less than COLD_RETRY_SECONDS ago, no hot wallet, setting
    off, or the chain holds less than the amount). The amount is the ledger's hot_wallet balance (what arrived and
    is final; what left is deducted when it was sent) minus the ceiling, read under the lock of that balance's row
    (taken after the hot SendingAddress's, the order payouts and refunds lock in), so a payout posting meanwhile
    waits for us. `onchain_balance` (the hot wallet's token balance at the latest
    block, read by the caller before this transaction) guards against a ledger that is wrong: no transaction is sent
    that would revert. In ONE database transaction: the ColdTransfer (`sent`) and its event, the
    OutgoingTransaction (purpose "cold", ERC-20 transfer from the hot wallet), and the posting Dr in_transit,
    Cr hot_wallet."""
    setting = HotColdSetting.objects.select_for_update().select_related("token__network").get(pk=setting.pk)
    token, network = setting.token, setting.token.network
    if not setting.is_active or ColdTransfer.objects.filter(token=token, status=ColdTransfer.Status.SENT).exists():
        return None
    last = ColdTransfer.objects.filter(token=token).order_by("-id").first()
    if (last is not None and last.status != ColdTransfer.Status.COMPLETED
            and timezone.now() - last.updated < timedelta(seconds=COLD_RETRY_SECONDS)):
        return None  # a reverted or cancelled transfer is not retried at once: an operator looks first
    # The hot SendingAddress before the balance row, like payouts and refunds (no lock-order deadlock with them).
    hot = (SendingAddress.objects.select_for_update()
           .filter(network=network, purpose=SendingAddress.Purpose.HOT).first())
    if hot is None:
        return None
    hot_account = wallet_account(kind=AccountKind.HOT_WALLET, network=network, token_id=token.id,
                                 address=hot.address)
    in_transit = operator_account(kind=AccountKind.IN_TRANSIT, network=network, token_id=token.id)
    # Both rows the posting below touches, in balances_lock's order (a payout's reversal posts the same two).
    balance = balances_lock(hot_account, in_transit)[hot_account.id]
    surplus = balance - setting.hot_ceiling_base_units
    if surplus <= 0:
        return None
    if onchain_balance is not None and onchain_balance < surplus:
        logger.error("hot/cold %s: the ledger says the hot wallet %s holds %d, the chain %d: no cold transfer of %d "
                     "(reconcile: manage.py ledger check --chain)", token, hot.address, balance, onchain_balance,
                     surplus)
        return None
    cold = ColdTransfer.objects.create(network=network, token=token, from_address=hot.address,
                                       to_address=setting.cold_address, amount_base_units=surplus)
    tx = outgoing_transaction_create(
        network=network, to_address=token.contract_address, gas_limit=setting.transfer_gas_limit,
        purpose=COLD_PURPOSE, source_reference=str(cold.id),
        data=erc20_transfer_data(to_address=setting.cold_address, amount_base_units=surplus),
    )
    cold.outgoing_transaction = tx
    cold.save(update_fields=["outgoing_transaction", "updated"])
    ColdTransferEvent.objects.create(cold_transfer=cold, from_status="", to_status=ColdTransfer.Status.SENT,
                                     detail={"ledger_balance": str(balance), "ceiling":
                                             str(setting.hot_ceiling_base_units), "outgoing_transaction": tx.id})
    journal_transaction_post(kind=Kind.COLD_SEND, source_type=COLD_SOURCE, source_id=str(cold.id),
                             memo=f"{hot.address} -> {setting.cold_address}",
                             postings=[Posting(in_transit, surplus), Posting(hot_account, -surplus)])
    logger.info("cold transfer %s: %d base units of %s from %s to %s (outgoing transaction %s)", cold.id, surplus,
                token, hot.address, setting.cold_address, tx.id)
    return cold


def _cold_settle_one(cold: ColdTransfer) -> None:
    tx = cold.outgoing_transaction
    network = cold.network
    in_transit = operator_account(kind=AccountKind.IN_TRANSIT, network=network, token_id=cold.token_id)
    amount = cold.amount_base_units
    if tx.status == TxStatus.FINAL:
        cold_account = wallet_account(kind=AccountKind.COLD_WALLET, network=network, token_id=cold.token_id,
                                      address=cold.to_address)
        journal_transaction_post(kind=Kind.COLD_FINAL, source_type=COLD_SOURCE, source_id=str(cold.id),
                                 postings=[Posting(cold_account, amount), Posting(in_transit, -amount)])
        cold_transfer_transition(cold=cold, to=ColdTransfer.Status.COMPLETED, detail={"block_number": tx.block_number})
        return
    hot_account = wallet_account(kind=AccountKind.HOT_WALLET, network=network, token_id=cold.token_id,
                                 address=cold.from_address)
    journal_transaction_post(kind=Kind.COLD_REVERSAL, source_type=COLD_SOURCE, source_id=str(cold.id),
                             postings=[Posting(hot_account, amount), Posting(in_transit, -amount)])
    to = ColdTransfer.Status.FAILED if tx.status == TxStatus.FAILED else ColdTransfer.Status.CANCELLED
    cold_transfer_transition(cold=cold, to=to, detail={"outgoing_status": tx.status, "block_number": tx.block_number})
    logger.warning("cold transfer %s %s (outgoing transaction %s): reversed in the ledger", cold.id, to, tx.id)


def cold_transfers_settle(*, limit: int = 100) -> int:
    """Consume each cold transfer whose transaction ended, once: one database transaction each, the row locked
    (SKIP LOCKED: two runs never take the same one), the posting and the transition together. Returns how many."""
    ids = list(ColdTransfer.objects.filter(status=ColdTransfer.Status.SENT, outgoing_transaction__status__in=ENDED)
               .order_by("id").values_list("id", flat=True)[:limit])
    done = 0
    for cold_id in ids:
        with transaction.atomic():
            cold = (ColdTransfer.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("outgoing_transaction", "network")
                    .filter(pk=cold_id, status=ColdTransfer.Status.SENT).first())
            if cold is None:
                continue
            _cold_settle_one(cold)
            done += 1
    return done


# --- Gas -----------------------------------------------------------------------------------------------------------


def gas_unposted_transactions():
    """The hot wallets' ended transactions whose gas is not posted yet. One that ended without gas recorded (never
    mined: cancelled before broadcast) has none to post and is left out, so it does not hold back forever what waits
    for gas to be posted (the hot wallet's reconciliation)."""
    posted = JournalTransaction.objects.filter(source_type=GAS_SOURCE, kind=Kind.GAS_SPENT,
                                               source_id=Cast(OuterRef("id"), CharField()))
    return (OutgoingTransaction.objects.filter(status__in=ENDED, sending_address__purpose=SendingAddress.Purpose.HOT,
                                               gas_used__gt=0, effective_gas_price__gt=0)
            .exclude(Exists(posted)))


def outgoing_gas_post(*, limit: int = 500) -> int:
    """Post the gas of every ended (final, failed, cancelled) transaction of a hot wallet ONCE, whatever its purpose:
    gasUsed x effectiveGasPrice in the native coin, Dr gas_spent, Cr hot_wallet(hot address). One database
    transaction per transaction, its row locked (SKIP LOCKED), the journal's unique source key behind it. Returns
    how many were posted."""
    ids = list(gas_unposted_transactions().order_by("id").values_list("id", flat=True)[:limit])
    done = 0
    for tx_id in ids:
        with transaction.atomic():
            tx = (OutgoingTransaction.objects.select_for_update(skip_locked=True, of=("self",))
                  .select_related("network").filter(pk=tx_id, status__in=ENDED).first())
            if tx is None:
                continue
            gas = (tx.gas_used or 0) * (tx.effective_gas_price or 0)
            if gas == 0:  # changed since the query: left out of it from now on
                continue
            gas_account = operator_account(kind=AccountKind.GAS_SPENT, network=tx.network, token_id=None)
            hot_account = wallet_account(kind=AccountKind.HOT_WALLET, network=tx.network, token_id=None,
                                         address=tx.from_address)
            _, created = journal_transaction_post(
                kind=Kind.GAS_SPENT, source_type=GAS_SOURCE, source_id=str(tx.id),
                memo=f"{tx.purpose} {tx.source_reference}".strip(),
                postings=[Posting(gas_account, gas), Posting(hot_account, -gas)])
            done += created
    return done


# --- Top-ups -------------------------------------------------------------------------------------------------------


# keccak("Transfer(address,address,uint256)"): the ERC-20 Transfer log's first topic
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def topup_transaction_verify(*, network: Network, client, token: Token | None, tx_hash: str, amount_base_units: int,
                             check_amount: bool = True) -> int:
    """Check on the chain that `tx_hash` succeeded and (unless `check_amount` is off: native coin sent by a
    contract's internal call) moved exactly `amount_base_units` of the asset to the hot wallet: the transaction's own
    value for the native coin, the token's Transfer logs to the hot wallet otherwise. Returns its block number.
    Raises HotColdError (param "tx_hash") when it does not hold, RpcError / RpcUnavailable when the node fails."""
    hot = _hot_wallet_required(network)
    receipt = client.call("eth_getTransactionReceipt", [tx_hash])
    if not receipt:
        raise HotColdError(code="parameter_invalid", param="tx_hash",
                           message=f"{tx_hash} is not mined on {network.code} (no receipt).")
    if int(receipt["status"], 16) != 1:
        raise HotColdError(code="parameter_invalid", param="tx_hash", message=f"{tx_hash} reverted.")
    if check_amount:
        if token is None:
            tx = client.call("eth_getTransactionByHash", [tx_hash]) or {}
            moved = int(tx.get("value") or "0x0", 16) if (tx.get("to") or "").lower() == hot.address else 0
        else:
            moved = sum(int(log["data"], 16) for log in receipt.get("logs", [])
                        if log["address"].lower() == token.contract_address and len(log["topics"]) == 3
                        and log["topics"][0] == TRANSFER_TOPIC and "0x" + log["topics"][2][-40:] == hot.address)
        if moved != amount_base_units:
            raise HotColdError(code="parameter_invalid", param="amount",
                               message=f"{tx_hash} moved {moved} base units of "
                                       f"{token.currency if token else 'native coin'} to the hot wallet "
                                       f"{hot.address}, not {amount_base_units}.")
    return int(receipt["blockNumber"], 16)


def _hot_wallet_required(network: Network) -> SendingAddress:
    hot = hot_wallet_of(network)
    if hot is None:
        raise HotColdError(code="hot_wallet_missing", param="network",
                           message=f"{network.code} has no hot wallet: run `manage.py hot_wallet --network "
                                   f"{network.code}` where the signer runs.")
    return hot


@transaction.atomic
def hot_wallet_topup_record(*, network: Network, token: Token | None, amount_base_units: int, tx_hash: str,
                            block_number: int, reason: str, from_cold: bool = False, actor=None) -> HotWalletTopup:
    """Record funds that reached the hot wallet from outside the gateway's own sends (an operator's top-up of native
    coin for gas, or of tokens), checked first by `topup_transaction_verify`: a HotWalletTopup row and its posting,
    Dr hot_wallet, Cr operator_funding (or, `from_cold`, Cr cold_wallet of the token's cold address: the operator
    moved them back from cold). One per (transaction, asset): recording it again returns the first record and
    changes nothing. Without a record, reconciliation reports the funds as a difference."""
    if amount_base_units <= 0:
        raise HotColdError(code="parameter_invalid", param="amount", message="The amount must be positive.")
    if token is not None and token.network_id != network.id:
        raise HotColdError(code="parameter_invalid", param="token", message=f"{token} is not a token of {network}.")
    tx_hash = tx_hash.lower()
    existing = HotWalletTopup.objects.filter(network=network, token=token, tx_hash=tx_hash).first()
    if existing is not None:
        return existing
    hot = _hot_wallet_required(network)
    token_id = token.id if token else None
    hot_account = wallet_account(kind=AccountKind.HOT_WALLET, network=network, token_id=token_id, address=hot.address)
    if from_cold:
        setting = HotColdSetting.objects.filter(token=token).first() if token else None
        if setting is None:
            raise HotColdError(code="parameter_invalid", param="from",
                               message="Only a token with a hot/cold setting has a cold address to come from.")
        source = wallet_account(kind=AccountKind.COLD_WALLET, network=network, token_id=token_id,
                                address=setting.cold_address)
    else:
        source = operator_account(kind=AccountKind.OPERATOR_FUNDING, network=network, token_id=token_id)
    journal, _ = journal_transaction_post(
        kind=Kind.HOT_TOPUP, source_type=TOPUP_SOURCE, source_id=f"{tx_hash}:{token.currency if token else 'native'}",
        memo=reason[:200], postings=[Posting(hot_account, amount_base_units), Posting(source, -amount_base_units)])
    topup = HotWalletTopup.objects.create(network=network, token=token, address=hot.address, tx_hash=tx_hash,
                                          block_number=block_number, amount_base_units=amount_base_units,
                                          from_cold=from_cold, reason=reason[:200], journal=journal)
    audit_record(actor=actor, action="hot_wallet_topup.record", obj=topup, after=model_snapshot(topup), reason=reason)
    return topup


# --- Floor alerts --------------------------------------------------------------------------------------------------


def _staff_emails() -> list[str]:
    return list(get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
                .order_by("email").values_list("email", flat=True).distinct())


def _alert_email(alert: HotWalletAlert, asset: str) -> None:
    recipients = _staff_emails()
    if not recipients:
        logger.warning("hot wallet alert %s: no staff email address to tell", alert.id)
        return
    try:
        send_mail(
            subject=f"[gateway] hot wallet {alert.address} on {alert.network.code}: {asset} below its floor",
            message=(f"The hot wallet {alert.address} on {alert.network.code} holds {alert.balance_base_units} base "
                     f"units of {asset}, below its floor of {alert.floor_base_units}.\n\nTop it up (from the cold "
                     f"address for tokens; native coin pays the gas), then record the top-up: manage.py ledger topup "
                     f"--network {alert.network.code} --token {asset.lower()} --amount BASE_UNITS --tx-hash 0x... "
                     f"--reason '...'.\nAdmin: Settlements > Hot wallet alerts."),
            from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=recipients,
        )
    except Exception:  # the alert row and the log stand; a mail server down must not stop the run
        logger.exception("hot wallet alert %s: the email could not be sent", alert.id)


def _alert_update(*, network: Network, token: Token | None, address: str, balance: int, floor: int) -> str | None:
    """Raise (once) or resolve the open alert of one asset; "raised", "resolved" or None."""
    asset = token.currency.upper() if token else f"{network.native_currency.upper()} (native)"
    with transaction.atomic():
        open_alert = HotWalletAlert.objects.select_for_update().filter(network=network, token=token,
                                                                       resolved_at__isnull=True).first()
        if balance < floor and open_alert is None:
            try:
                with transaction.atomic():
                    alert = HotWalletAlert.objects.create(network=network, token=token, address=address,
                                                          balance_base_units=balance, floor_base_units=floor)
            except IntegrityError:  # raised concurrently by another run
                return None
            logger.warning("hot wallet %s on %s: %s %d below its floor %d", address, network.code, asset, balance,
                           floor)
            transaction.on_commit(lambda: _alert_email(alert, asset))
            return "raised"
        if balance >= floor and open_alert is not None:
            open_alert.resolved_at = timezone.now()
            open_alert.resolved_balance_base_units = balance
            open_alert.save(update_fields=["resolved_at", "resolved_balance_base_units"])
            logger.info("hot wallet %s on %s: %s back at %d (floor %d): alert resolved", address, network.code,
                        asset, balance, floor)
            return "resolved"
    return None


def hot_wallet_alerts_check(*, network: Network) -> list[str]:
    """Compare the hot wallet's ledger balances (tokens of the active settings, and the native coin against the
    highest native floor of the network's settings) with their floors: raise an alert once (log, admin, email to
    staff) below, resolve it at or above. Returns what changed, e.g. ["raised usdt", "resolved native"]."""
    hot = hot_wallet_of(network)
    settings_rows = list(HotColdSetting.objects.filter(token__network=network, is_active=True).select_related("token"))
    if hot is None or not settings_rows:
        return []
    checks = [(row.token, row.hot_floor_base_units) for row in settings_rows]
    checks.append((None, max(row.native_floor_base_units for row in settings_rows)))
    changes = []
    for token, floor in checks:
        balance = wallet_balance(kind=AccountKind.HOT_WALLET, network=network, token_id=token.id if token else None,
                                 address=hot.address)
        change = _alert_update(network=network, token=token, address=hot.address, balance=balance, floor=floor)
        if change:
            changes.append(f"{change} {token.currency if token else 'native'}")
    return changes


# --- The beat task's run -------------------------------------------------------------------------------------------


@dataclass
class HotColdRun:
    settled: int = 0
    gas_posted: int = 0
    cold_transfers: list[int] = field(default_factory=list)
    alerts: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"settled": self.settled, "gas_posted": self.gas_posted, "cold_transfers": self.cold_transfers,
                "alerts": self.alerts}


def _token_balance(token: Token, address: str) -> int:
    client = rpc_client_or_none(token.network)
    if client is None:
        raise RpcUnavailable(f"no RPC URL for {token.network.code}")
    data = "0x" + (BALANCE_OF_SELECTOR + abi_encode(["address"], [address])).hex()
    result = client.call("eth_call", [{"to": token.contract_address, "data": data}, "latest"])
    return int(result[:66], 16) if result and result != "0x" else 0


def _step(what: str, step, default):
    """Run one step of the run; a deadlock or serialization failure (OperationalError: its own transaction rolled
    back) is logged and the run goes on, the next run tries again."""
    try:
        return step()
    except OperationalError as exc:
        logger.warning("hot/cold: %s skipped this run: %s", what, exc)
        return default


def hot_cold_run() -> HotColdRun:
    """Settle ended cold transfers, post gas, then per active setting start a cold transfer of the surplus, then
    check the floors of every network with a setting. Each step commits on its own; a row that fails is logged and
    left for the next run."""
    run = HotColdRun(settled=_step("settling cold transfers", cold_transfers_settle, 0),
                     gas_posted=_step("posting gas", outgoing_gas_post, 0))
    for setting in (HotColdSetting.objects.filter(is_active=True, token__network__is_active=True)
                    .select_related("token__network").order_by("id")):
        hot = hot_wallet_of(setting.token.network)
        if hot is None:
            continue
        try:
            onchain = _token_balance(setting.token, hot.address)  # before the transaction: no lock held over RPC
            cold = cold_transfer_start(setting=setting, onchain_balance=onchain)
        except (RpcError, RpcUnavailable) as exc:
            logger.warning("hot/cold %s: the node did not answer, no cold transfer this run: %s", setting.token, exc)
            continue
        except DomainError as exc:
            logger.error("hot/cold %s: no cold transfer: %s", setting.token, exc.message)
            continue
        except OperationalError as exc:  # deadlock or serialization failure: rolled back, the next run tries again
            logger.warning("hot/cold %s: no cold transfer this run: %s", setting.token, exc)
            continue
        if cold is not None:
            run.cold_transfers.append(cold.id)
    for network in Network.objects.filter(Q(is_active=True), Exists(
            HotColdSetting.objects.filter(token__network=OuterRef("pk"), is_active=True))).order_by("id"):
        changes = _step(f"checking the floors of {network.code}",
                        lambda network=network: hot_wallet_alerts_check(network=network), [])
        if changes:
            run.alerts[network.code] = changes
    return run
