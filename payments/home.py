"""Reads of the portal's home page: volume and count per day per network and token, conversion, median time to pay,
what needs attention, and the networks that lag. Every figure is aggregated in PostgreSQL over an index range
(`charge_list_idx`, `pi_list_idx`, `pi_attention_idx`): one merchant's million intents are never loaded."""
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from merchants.models import Merchant
from wallets.chain.selectors import chain_status_list
from wallets.models import Network

from .models import Charge, PaymentIntent, UnmatchedDeposit

PERIODS = (7, 30, 90)
Status = PaymentIntent.Status


def period_start(*, days: int, now: datetime | None = None) -> datetime:
    """Midnight UTC at the start of the first of the last `days` days (today included)."""
    today = (now or timezone.now()).astimezone(UTC).date()
    return datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)


def amount_display(base_units: int, decimals: int) -> str:
    """Base units as a decimal with 2 places (half-even), for display only."""
    value = (Decimal(base_units).scaleb(-decimals)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"{value:,}"


@dataclass
class Series:
    """One network x token: its succeeded charges per day (every day of the period, zeros included)."""

    network: str
    network_name: str
    token: str
    decimals: int
    counts: dict[date, int] = field(default_factory=dict)
    amounts: dict[date, int] = field(default_factory=dict)  # base units

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    @property
    def amount_base_units(self) -> int:
        return sum(self.amounts.values())

    @property
    def amount(self) -> str:
        return amount_display(self.amount_base_units, self.decimals)


def volume_by_day(*, merchant: Merchant, livemode: bool, since: datetime) -> list[Series]:
    rows = (
        Charge.objects.filter(merchant=merchant, livemode=livemode, created__gte=since, status=Charge.Status.SUCCEEDED)
        .annotate(day=TruncDate("created", tzinfo=UTC))
        .values("day", "transfer__network__code", "transfer__network__display_name", "transfer__network__native_currency",
                "transfer__network__native_decimals", "transfer__token__currency", "transfer__token__decimals")
        .annotate(n=Count("id"), amount=Sum("transfer__amount_base_units"))
    )
    series: dict[tuple[str, str], Series] = {}
    for row in rows:
        token = row["transfer__token__currency"] or row["transfer__network__native_currency"]
        decimals = row["transfer__token__decimals"]
        if decimals is None:
            decimals = row["transfer__network__native_decimals"]
        key = (row["transfer__network__code"], token)
        one = series.get(key) or series.setdefault(key, Series(
            network=key[0], network_name=row["transfer__network__display_name"], token=token, decimals=decimals))
        one.counts[row["day"]] = one.counts.get(row["day"], 0) + row["n"]
        one.amounts[row["day"]] = one.amounts.get(row["day"], 0) + int(row["amount"] or 0)
    return sorted(series.values(), key=lambda s: (s.network, s.token))


@dataclass(frozen=True)
class Conversion:
    created: int
    succeeded: int

    @property
    def rate_percent(self) -> str:
        if not self.created:
            return "–"
        return f"{(Decimal(self.succeeded * 100) / self.created).quantize(Decimal('0.1'), ROUND_HALF_EVEN)} %"


def conversion(*, merchant: Merchant, livemode: bool, since: datetime) -> Conversion:
    """Of the intents created in the period, how many succeeded."""
    counts = PaymentIntent.objects.filter(merchant=merchant, livemode=livemode, created__gte=since).aggregate(
        created=Count("id"), succeeded=Count("id", filter=Q(status=Status.SUCCEEDED)))
    return Conversion(created=counts["created"], succeeded=counts["succeeded"])


def median_seconds_to_pay(*, merchant: Merchant, livemode: bool, since: datetime) -> float | None:
    """Median of (the charge that made it succeed minus the intent's creation) over the period's succeeded
    intents; None when none succeeded."""
    intents, charges = PaymentIntent._meta.db_table, Charge._meta.db_table
    # The period's charges (charge_list_idx) lead, each looking up its intent by index: a charge is never older than
    # its intent. OFFSET 0 keeps PostgreSQL from flattening the lookup into a merge join that reads every intent.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM c.created - p.created)) "
            f"FROM {charges} c CROSS JOIN LATERAL ("
            f"  SELECT created FROM {intents} WHERE id = c.payment_intent_id AND latest_charge_id = c.id"
            f"  AND status = %s AND created >= %s OFFSET 0) p "
            f"WHERE c.merchant_id = %s AND c.livemode = %s AND c.created >= %s",
            [Status.SUCCEEDED, since, merchant.pk, livemode, since],
        )
        value = cursor.fetchone()[0]
    return None if value is None else float(value)


def duration_display(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@dataclass(frozen=True)
class Attention:
    partially_paid: int  # open, some funds seen, not all
    processing: int  # paid, waiting for finality
    unmatched_deposits: int  # in the last UNMATCHED_DAYS days


UNMATCHED_DAYS = 30


def attention(*, merchant: Merchant, livemode: bool) -> Attention:
    open_counts = PaymentIntent.objects.filter(
        merchant=merchant, livemode=livemode, status__in=[Status.REQUIRES_ACTION, Status.PROCESSING],
    ).aggregate(
        partially_paid=Count("id", filter=Q(status=Status.REQUIRES_ACTION, amount_seen__gt=0)),
        processing=Count("id", filter=Q(status=Status.PROCESSING)),
    )
    unmatched = UnmatchedDeposit.objects.filter(
        merchant=merchant, livemode=livemode, created__gte=timezone.now() - timedelta(days=UNMATCHED_DAYS)).count()
    return Attention(partially_paid=open_counts["partially_paid"], processing=open_counts["processing"],
                     unmatched_deposits=unmatched)


@dataclass(frozen=True)
class Lag:
    network: str
    blocks: int
    minutes_since_scan: int


def lagging_networks(*, merchant: Merchant, livemode: bool) -> list[Lag]:
    """The active networks of the mode the merchant accepts whose scanner was more than GATEWAY_PORTAL_LAG_BLOCKS
    behind the node's head when last seen, or has not moved for STALE_MINUTES. Networks never scanned are left
    out (nothing watches them)."""
    networks = Network.objects.filter(is_active=True, livemode=livemode)
    if merchant.enabled_networks:
        networks = networks.filter(api_name__in=merchant.enabled_networks)
    names = dict(networks.values_list("code", "display_name"))
    limit, now = settings.GATEWAY_PORTAL_LAG_BLOCKS, timezone.now()
    lags = []
    for status in chain_status_list(active_only=True):
        if status.network not in names or status.lag is None:
            continue
        minutes = int((now - status.updated).total_seconds() // 60) if status.updated else 0
        if status.lag > limit or minutes >= STALE_MINUTES:
            lags.append(Lag(network=names[status.network], blocks=status.lag, minutes_since_scan=minutes))
    return lags


STALE_MINUTES = 10
