"""Reads for the operator: one snapshot of the gateway's state from the database (and the broker's queue lengths),
presented as Prometheus gauges by `/metrics` (monitoring/collectors.py) and as the staff operations page
(monitoring/views.py). Every query is an aggregate over a partial index or a small table; the whole snapshot runs in
one read-only transaction under a statement timeout, so a slow database makes a scrape fail, never pile up."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from merchants.models import WebhookEndpoint
from payments.models import ChargeLedgerOutbox, Event, HeldDeposit, PaymentIntent, WebhookDelivery
from settlements.models import AccountKind, LedgerAdjustment, LedgerBalance, Payout, Refund
from wallets.models import AddressActivity, BalanceDiscrepancy, IssuerBlacklistAlert, Network, OutgoingTransaction

from .floors import hot_wallet_floors

OPEN_INTENT_STATUSES = (PaymentIntent.Status.REQUIRES_CONFIRMATION, PaymentIntent.Status.REQUIRES_ACTION,
                        PaymentIntent.Status.PROCESSING)
OUTGOING_OPEN_STATUSES = tuple(s for s in OutgoingTransaction.Status.values
                               if s not in ("final", "failed", "cancelled"))
CELERY_QUEUES = ("default", "chain", "webhooks", "signer")
SNAPSHOT_STATEMENT_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class NetworkRow:
    code: str
    display_name: str
    livemode: bool
    finality: str  # "finalized", "safe" or "N confirmations"
    block_time_ms: int
    cursor: int | None
    head: int | None
    finalized: int | None
    lag: int | None
    cursor_updated: datetime | None


@dataclass(frozen=True)
class HotWalletRow:
    network: str
    livemode: bool
    asset: str  # the token's currency, or the native coin's
    address: str
    balance_base_units: int
    decimals: int
    floor_base_units: int | None

    @property
    def balance(self) -> Decimal:
        return Decimal(self.balance_base_units).scaleb(-self.decimals)

    @property
    def floor(self) -> Decimal | None:
        return None if self.floor_base_units is None else Decimal(self.floor_base_units).scaleb(-self.decimals)

    @property
    def below_floor(self) -> bool:
        return self.floor_base_units is not None and self.balance_base_units < self.floor_base_units


@dataclass
class OperationsSnapshot:
    taken_at: datetime
    intents_open: dict[str, int]  # status -> count (open statuses only: the terminal ones are counters)
    networks: list[NetworkRow]
    webhook_due: int
    webhook_pending: int
    events_not_fanned_out: int
    webhook_endpoints_failing: int
    webhook_endpoints_disabled: int
    address_activity_rows: int
    ledger_outbox_rows: int
    outgoing_open: dict[str, int]
    hot_wallets: list[HotWalletRow]
    discrepancies_open: dict[str, int]  # network code -> count
    approvals_pending: dict[str, int]  # payouts / refunds held by a limit, ledger adjustments proposed -> count
    deposits_held: int = 0  # deposits from blocked senders waiting for a staff decision (payments.HeldDeposit)
    issuer_blacklist_alerts: list = field(default_factory=list)  # not acknowledged yet (wallets.IssuerBlacklistAlert)
    celery_queues: dict[str, int | None] = field(default_factory=dict)  # None: the broker did not answer


def _finality(network: Network) -> str:
    if network.finality == Network.Finality.CONFIRMATIONS:
        return f"{network.confirmations} confirmations"
    return network.finality


def _network_rows() -> list[NetworkRow]:
    rows = []
    for network in Network.objects.filter(is_active=True).select_related("cursor").order_by("livemode", "code"):
        cursor = getattr(network, "cursor", None)
        rows.append(NetworkRow(
            code=network.code, display_name=network.display_name, livemode=network.livemode,
            finality=_finality(network), block_time_ms=network.block_time_ms,
            cursor=cursor.block_number if cursor else None, head=cursor.head_number if cursor else None,
            finalized=cursor.finalized_number if cursor else None, lag=cursor.lag if cursor else None,
            cursor_updated=cursor.updated if cursor else None,
        ))
    return rows


def _hot_wallet_rows() -> list[HotWalletRow]:
    floors = hot_wallet_floors()
    rows = []
    balances = (LedgerBalance.objects.filter(account__kind=AccountKind.HOT_WALLET)
                .select_related("account__network", "account__token")
                .order_by("account__network__code", "account__token__currency", "account__address"))
    for row in balances:
        account = row.account
        token = account.token
        rows.append(HotWalletRow(
            network=account.network.code, livemode=account.livemode,
            asset=token.currency if token else account.network.native_currency, address=account.address,
            # The ledger's asset side is debit-positive: the wallet's balance is the running balance itself.
            balance_base_units=int(row.balance),
            decimals=token.decimals if token else account.network.native_decimals,
            floor_base_units=floors.get((account.network_id, account.token_id)),
        ))
    return rows


def celery_queue_lengths() -> dict[str, int | None]:
    """Messages waiting in each Celery queue of the Redis broker (LLEN), None when the broker does not answer."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return {}
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        pipe = client.pipeline(transaction=False)
        for queue in CELERY_QUEUES:
            pipe.llen(queue)
        return dict(zip(CELERY_QUEUES, pipe.execute()))
    except redis.RedisError:
        return {queue: None for queue in CELERY_QUEUES}
    finally:
        client.close()


def operations_snapshot(*, with_broker: bool = True) -> OperationsSnapshot:
    """The gateway's state as the operator reads it, in one consistent read-only snapshot."""
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {SNAPSHOT_STATEMENT_TIMEOUT_MS}")
        # Two reads, each on its partial index (pi_open_expiry_idx, pi_processing_idx): never the whole table.
        intents = dict(PaymentIntent.objects.filter(status__in=OPEN_INTENT_STATUSES[:2]).values("status")
                       .annotate(n=Count("pk")).values_list("status", "n"))
        intents[PaymentIntent.Status.PROCESSING] = PaymentIntent.objects.filter(
            status=PaymentIntent.Status.PROCESSING).count()
        pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        snapshot = OperationsSnapshot(
            taken_at=now,
            intents_open={status: intents.get(status, 0) for status in OPEN_INTENT_STATUSES},
            networks=_network_rows(),
            webhook_due=pending.filter(next_attempt_at__lte=now).count(),
            webhook_pending=pending.count(),
            events_not_fanned_out=Event.objects.filter(fanned_out_at__isnull=True).count(),
            webhook_endpoints_failing=WebhookEndpoint.objects.filter(
                status=WebhookEndpoint.Status.ENABLED, failing_since__isnull=False).count(),
            webhook_endpoints_disabled=WebhookEndpoint.objects.filter(status=WebhookEndpoint.Status.DISABLED).count(),
            address_activity_rows=AddressActivity.objects.count(),
            ledger_outbox_rows=ChargeLedgerOutbox.objects.count(),
            outgoing_open=dict(OutgoingTransaction.objects.filter(status__in=OUTGOING_OPEN_STATUSES)
                               .values("status").annotate(n=Count("pk")).values_list("status", "n")),
            hot_wallets=_hot_wallet_rows(),
            discrepancies_open=dict(BalanceDiscrepancy.objects.filter(resolved_at__isnull=True)
                                    .values("network__code").annotate(n=Count("pk"))
                                    .values_list("network__code", "n")),
            # Each on its partial index (payout_awaiting_idx, refund_awaiting_idx); adjustments are few.
            approvals_pending={
                "payouts": Payout.objects.filter(awaiting_approval=True).count(),
                "refunds": Refund.objects.filter(awaiting_approval=True).count(),
                "ledger_adjustments": LedgerAdjustment.objects.filter(
                    status=LedgerAdjustment.Status.PROPOSED).count(),
            },
            deposits_held=HeldDeposit.objects.filter(status=HeldDeposit.Status.HELD).count(),  # held_deposit_open_idx
            issuer_blacklist_alerts=list(IssuerBlacklistAlert.objects.filter(acknowledged_at__isnull=True)
                                         .select_related("network", "token")[:50]),
        )
    if with_broker:
        snapshot.celery_queues = celery_queue_lengths()
    return snapshot
