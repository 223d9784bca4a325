"""Reads of the portal's payments and developer pages: filtered lists paged by keyset on (created, id) (settlements'
money pages page theirs with the same functions), and what a payment's detail page shows. Every query is filtered
by the merchant and the mode of the session."""
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from merchants.models import WebhookEndpoint
from wallets.models import Network

from ..models import Charge, Event, PaymentIntent, UnmatchedDeposit, WebhookAttempt, WebhookDelivery

PAGE_SIZE = 50


# --- Keyset pagination on (created, id) --------------------------------------------------------------------------

def _older_than(created, pk) -> Q:
    """Rows after (created, pk) in the newest-first order. `created <= c` is what the (merchant, livemode, -created,
    -id) indexes seek on; the OR only sorts out the rows of the same instant."""
    return Q(created__lte=created) & (Q(created__lt=created) | Q(pk__lt=pk))


def _newer_than(created, pk) -> Q:
    return Q(created__gte=created) & (Q(created__gt=created) | Q(pk__gt=pk))


@contextmanager
def planned_for_its_values():
    """The statements inside are planned for their parameters' values, never with a cached generic plan. The
    connection prepares a statement after a few runs (DATABASE_OPTIONS prepare_threshold), and PostgreSQL's generic
    plan of a filtered list walks the whole (merchant, livemode, created) index: a metadata search of 1,000,000
    intents took 2 s that way, against 20 ms through the metadata index with the value in view
    (docs/benchmarks.md). A list is read rarely enough that planning each time costs nothing that shows."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield


@dataclass(frozen=True)
class Page:
    rows: list
    newer: object | None  # pass as `before` for the previous (newer) page
    older: object | None  # pass as `after` for the next (older) page


def keyset_page(qs: QuerySet, *, size: int = PAGE_SIZE, after=None, before=None) -> Page:
    """One page of `qs`, newest first. `after` / `before` are the boundary row (anything with `created` and `pk`):
    the page holds the rows just older than `after`, or just newer than `before`. Each page is one index seek
    whatever its depth."""
    if before is not None:
        with planned_for_its_values():
            rows = list(qs.filter(_newer_than(before.created, before.pk)).order_by("created", "pk")[:size + 1])
        more = len(rows) > size
        rows = rows[:size][::-1]
        return Page(rows=rows, newer=rows[0].pk if more and rows else None, older=rows[-1].pk if rows else None)
    if after is not None:
        qs = qs.filter(_older_than(after.created, after.pk))
    with planned_for_its_values():
        rows = list(qs.order_by("-created", "-pk")[:size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows=rows, newer=rows[0].pk if after is not None and rows else None,
                older=rows[-1].pk if more else None)


def filtered_keyset_page(form, rows: QuerySet, *, merchant, livemode: bool,
                         match: Mapping[str, str] | None = None,
                         narrow: Callable[[QuerySet, dict], QuerySet] | None = None) -> Page | None:
    """The page of a filtered list (payments, unmatched deposits, events; settlements' payouts and refunds): `rows`
    (the merchant's, in this mode) narrowed by the filters of `form`, a bound payments.portal.forms.KeysetCursorForm,
    and paged from its cursor. `match` maps a filter field to the lookup it sets when given (a status, a reason, a
    type); `narrow(rows, cleaned_data)` does any other filtering. None when the filters or the cursor are not valid
    (a cursor that is not one of the merchant's `rows.model` in this mode becomes an error of its field): the page
    then shows the form's errors with a 400, and no row. One place for the order every list relies on: the filters
    are validated before the cursor is looked up, and the list is read only when both are valid."""
    if not form.is_valid():
        return None
    bounds = form.bounds(rows.model, merchant=merchant, livemode=livemode)
    if not form.is_valid():
        return None
    data = form.cleaned_data
    for field, lookup in (match or {}).items():
        if data[field]:
            rows = rows.filter(**{lookup: data[field]})
    if narrow is not None:
        rows = narrow(rows, data)
    return keyset_page(rows, **bounds)


def keyset_chunks(qs: QuerySet, *, fields: list[str], size: int = 2000):
    """Every row of `qs` as value tuples, newest first, in chunks of `size`: one short query per chunk (no
    server-side cursor held open, no OFFSET). `fields` must end with the creation time (`created`, or an
    annotation of it that PostgreSQL reads back as the same instant) and "id"."""
    assert fields[-1] == "id"
    boundary = None
    while True:
        chunk_qs = qs if boundary is None else qs.filter(_older_than(*boundary))
        with planned_for_its_values():
            rows = list(chunk_qs.order_by("-created", "-id").values_list(*fields)[:size])
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        boundary = rows[-1][-2:]


# --- Payment intents ---------------------------------------------------------------------------------------------

def payment_intents_list(*, merchant, livemode: bool) -> QuerySet:
    return PaymentIntent.objects.filter(merchant=merchant, livemode=livemode).select_related(
        "latest_charge__transfer__network", "latest_charge__transfer__token", "deposit_address",
    )


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def payment_intents_filter(qs: QuerySet, *, filters: dict, network_ids: list[int]) -> QuerySet:
    """`filters`: the cleaned data of payments.portal.forms.PaymentFilterForm. Amounts are in minor units; dates are
    UTC days, both ends included; `network`/`token` keep the intents paid (a Charge) on that network / in that
    token; `q` is an id: pi_..., ch_..., a transaction hash, a deposit address or a receipt email."""
    f = filters
    if f.get("status"):
        qs = qs.filter(status=f["status"])
    if f.get("created_from"):
        qs = qs.filter(created__gte=_day_start(f["created_from"]))
    if f.get("created_to"):
        qs = qs.filter(created__lt=_day_start(f["created_to"]) + timedelta(days=1))
    if f.get("amount_min_minor") is not None:
        qs = qs.filter(amount__gte=f["amount_min_minor"])
    if f.get("amount_max_minor") is not None:
        qs = qs.filter(amount__lte=f["amount_max_minor"])
    if f.get("metadata_key"):
        if f.get("metadata_value"):
            qs = qs.filter(metadata__contains={f["metadata_key"]: f["metadata_value"]})
        else:
            qs = qs.filter(metadata__has_key=f["metadata_key"])
    paid = {}
    if f.get("network"):
        paid["transfer__network__api_name"] = f["network"]
    if f.get("token"):
        paid["transfer__token__currency"] = f["token"]
    if paid:
        qs = qs.filter(Exists(Charge.objects.filter(payment_intent=OuterRef("pk"), **paid)))
    kind, value = f.get("q_kind"), f.get("q")
    if kind == "pi":
        qs = qs.filter(pk=value)
    elif kind == "ch":
        qs = qs.filter(Exists(Charge.objects.filter(payment_intent=OuterRef("pk"), pk=value)))
    elif kind == "tx":
        # network_id = ANY(...) lets the transfer's (network, tx_hash, ...) unique index find the hash.
        qs = qs.filter(Exists(Charge.objects.filter(
            payment_intent=OuterRef("pk"), transfer__network_id__in=network_ids, transfer__tx_hash=value,
            transfer__orphaned_at__isnull=True,
        )))
    elif kind == "address":
        qs = qs.filter(deposit_address__address=value)
    elif kind == "email":
        qs = qs.filter(receipt_email__iexact=value)
    return qs


def network_ids() -> list[int]:
    return list(Network.objects.values_list("pk", flat=True))


def payment_intent_for_portal(*, merchant, livemode: bool, intent_id: str) -> PaymentIntent | None:
    return payment_intents_list(merchant=merchant, livemode=livemode).filter(pk=intent_id).first()


def cursor_row(model, *, merchant, livemode: bool, pk):
    """The (created, pk) of a row of the merchant's, to page from; None when it is not theirs."""
    return model.objects.filter(merchant=merchant, livemode=livemode, pk=pk).only("pk", "created").first()


@dataclass(frozen=True)
class PaymentDetail:
    charges: list
    events: list
    unmatched: list
    deliveries: list


def payment_intent_detail(*, intent: PaymentIntent) -> PaymentDetail:
    """What the detail page shows beside the intent: its charges, the events of the intent and of its charges
    (oldest first: the timeline), the unmatched deposits to its address, and the webhook deliveries of those
    events."""
    charges = list(Charge.objects.filter(payment_intent=intent).select_related(
        "transfer__network", "transfer__token").order_by("created", "pk"))
    object_ids = [intent.pk] + [c.pk for c in charges]
    events = list(Event.objects.filter(merchant_id=intent.merchant_id, object_id__in=object_ids)
                  .order_by("created", "sequence", "pk"))
    unmatched_q = Q(payment_intent=intent)
    if intent.deposit_address_id is not None:
        unmatched_q |= Q(transfer__deposit_address_id=intent.deposit_address_id)
    unmatched = list(UnmatchedDeposit.objects.filter(unmatched_q, merchant_id=intent.merchant_id)
                     .select_related("transfer__network", "transfer__token").order_by("created"))
    deliveries = list(WebhookDelivery.objects.filter(event__in=[e.pk for e in events])
                      .select_related("endpoint", "event").order_by("-created", "-pk")[:200])
    return PaymentDetail(charges=charges, events=events, unmatched=unmatched, deliveries=deliveries)


# --- Unmatched deposits ----------------------------------------------------------------------------------------

def unmatched_deposits_list(*, merchant, livemode: bool) -> QuerySet:
    """The merchant's deposits that paid no intent (late, to an unknown address, in a token or on a network the
    intent did not take), with what each is (`reason`, UnmatchedDeposit.Reason: the list filters on it)."""
    return (UnmatchedDeposit.objects.filter(merchant=merchant, livemode=livemode)
            .select_related("transfer__network", "transfer__token", "payment_intent", "assignment"))


# --- Developers: webhook endpoints, deliveries, events -----------------------------------------------------------

def webhook_endpoints_for_portal(*, merchant, livemode: bool) -> QuerySet:
    return WebhookEndpoint.objects.filter(merchant=merchant, livemode=livemode, deleted=False).order_by(
        "-created", "-pk")


def webhook_endpoint_for_portal(*, merchant, livemode: bool, endpoint_id: str) -> WebhookEndpoint | None:
    return webhook_endpoints_for_portal(merchant=merchant, livemode=livemode).filter(pk=endpoint_id).first()


def webhook_deliveries_of(*, endpoint: WebhookEndpoint) -> QuerySet:
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event")


def webhook_delivery_of(*, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery | None:
    return webhook_deliveries_of(endpoint=endpoint).filter(pk=delivery_id).first()


def webhook_attempts_of(*, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    return list(delivery.attempt_rows.order_by("-started_at", "-pk")[:50])


def event_deliveries(*, event: Event) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(event=event).select_related("endpoint").order_by("-created", "-pk"))
