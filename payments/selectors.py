import hmac
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from gateway.ids import id_is_valid
from wallets.models import ChainCursor, Transfer

from .models import Charge, ChargeDust, Event, HeldDeposit, PaymentIntent, PaymentOption, UnmatchedDeposit, WebhookDelivery
from .pricing import FIAT_EXPONENTS


def _with_details(qs: QuerySet) -> QuerySet:
    return qs.select_related("deposit_address", "merchant").prefetch_related(
        Prefetch("options", queryset=PaymentOption.objects.select_related("token__network").order_by("token__network_id", "token__currency"))
    )


def payment_intents_for(*, merchant, livemode: bool) -> QuerySet:
    return _with_details(PaymentIntent.objects.filter(merchant=merchant, livemode=livemode))


def payment_intent_get(*, merchant, livemode: bool, intent_id: str) -> PaymentIntent | None:
    return payment_intents_for(merchant=merchant, livemode=livemode).filter(pk=intent_id).first()


def payment_intent_by_client_secret(client_secret: str) -> PaymentIntent | None:
    """For the hosted checkout: the secret alone grants a view of this one intent. A malformed secret, an unknown
    intent and a wrong secret all give None."""
    intent_id, sep, token = client_secret.partition("_secret_")
    if not sep or not id_is_valid(intent_id, "pi") or not token.isascii() or not token.isalnum():
        return None
    intent = _with_details(PaymentIntent.objects.filter(pk=intent_id)).first()
    if intent is None or not client_secret_matches(intent, client_secret):
        return None
    return intent


def client_secret_matches(intent: PaymentIntent, client_secret) -> bool:
    """In constant time, and as bytes (compare_digest refuses a str with non-ASCII characters)."""
    if not isinstance(client_secret, str):
        return False
    return hmac.compare_digest(intent.client_secret.encode(), client_secret.encode("utf-8", "surrogatepass"))


def payment_intent_ids_due_for_expiry(*, now, limit: int = 500) -> list[str]:
    return list(
        PaymentIntent.objects.filter(
            status__in=[PaymentIntent.Status.REQUIRES_CONFIRMATION, PaymentIntent.Status.REQUIRES_ACTION],
            expires_at__lte=now,
        ).order_by("expires_at").values_list("pk", flat=True)[:limit]
    )


def payment_intent_cursor(*, merchant, livemode: bool, intent_id: str) -> PaymentIntent | None:
    """Just enough of an intent to page from it."""
    return PaymentIntent.objects.filter(merchant=merchant, livemode=livemode, pk=intent_id).only("id", "created").first()


def charges_for(*, merchant, livemode: bool):
    return Charge.objects.filter(merchant=merchant, livemode=livemode).select_related(
        "transfer__network", "transfer__token"
    )


def charge_cursor(*, merchant, livemode: bool, charge_id: str):
    return Charge.objects.filter(merchant=merchant, livemode=livemode, pk=charge_id).only("id", "created").first()


def network_heads() -> dict[int, int]:
    """network id -> the head the chain watcher saw last, for `confirmations`."""
    return dict(ChainCursor.objects.values_list("network_id", "head_number"))


# Events are listed and retrieved for 30 days, as in Stripe; the rows themselves stay.
EVENT_RETENTION = timedelta(days=30)


def events_for(*, merchant, livemode: bool, now=None) -> QuerySet:
    """The caller's events of the last 30 days, each with `pending_webhooks_count` (its deliveries still pending)."""
    now = now or timezone.now()
    pending = (
        WebhookDelivery.objects.filter(event=OuterRef("pk"), status=WebhookDelivery.Status.PENDING)
        .order_by().values("event").annotate(n=Count("pk")).values("n")
    )
    return Event.objects.filter(merchant=merchant, livemode=livemode, created__gte=now - EVENT_RETENTION).annotate(
        pending_webhooks_count=Coalesce(Subquery(pending, output_field=IntegerField()), 0)
    )


def events_delivery_success(qs: QuerySet, success: bool) -> QuerySet:
    """Stripe's `delivery_success`: false keeps the events with a delivery still pending or given up on."""
    undelivered = WebhookDelivery.objects.filter(event=OuterRef("pk")).exclude(
        status=WebhookDelivery.Status.SUCCEEDED
    )
    return qs.filter(~Exists(undelivered)) if success else qs.filter(Exists(undelivered))


def event_get(*, merchant, livemode: bool, event_id: str) -> Event | None:
    return events_for(merchant=merchant, livemode=livemode).filter(pk=event_id).first()


def event_cursor(*, merchant, livemode: bool, event_id: str) -> Event | None:
    return Event.objects.filter(merchant=merchant, livemode=livemode, pk=event_id).only("id", "created").first()


def event_type_q(pattern: str) -> Q:
    """`type` as Stripe takes it: an exact name, or a group with `*` as a wildcard (`payment_intent.*`)."""
    if "*" not in pattern:
        return Q(type=pattern)
    if pattern.strip("*") == "":
        return Q()
    regex = "^" + ".*".join(_regex_literal(part) for part in pattern.split("*")) + "$"
    return Q(type__regex=regex)


def _regex_literal(text: str) -> str:
    # Only [a-z0-9_.] reach here (payments.event_apis checks the pattern): escape the dot.
    return text.replace(".", "\\.")


# --- The hosted checkout --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckoutFunds:
    """What the customer has sent to an intent's address, as the checkout tells them. Live transfers only (a block
    that left the chain takes its transfers with it), in chain order, of the intent's tokens."""

    paid: list  # wallets.models.Transfer that count for the intent (what `amount_received`/`amount_seen` come from)
    late: list  # transfers that came after the intent closed and are not credited to it (unmatched deposits)

    @staticmethod
    def value_minor(transfers: list, currency: str) -> Fraction:
        """The exact worth of stablecoin transfers in minor units of `currency` (as payments.funding counts them)."""
        exponent = FIAT_EXPONENTS[currency]
        return sum((Fraction(t.amount_base_units * 10 ** exponent, 10 ** t.token.decimals) for t in transfers),
                   Fraction(0))


def checkout_funds(*, intent: PaymentIntent) -> CheckoutFunds:
    """The transfers payments.funding counts for the intent (`paid`, seen or final) and the ones it records as
    unmatched deposits because the intent had closed (`late`). Transfers of other tokens or networks, and transfers
    staff assigned to another intent, are neither."""
    if intent.deposit_address_id is None:
        return CheckoutFunds(paid=[], late=[])
    accepted = {o.token_id for o in intent.options.all()}
    transfers = list(
        Transfer.objects.filter(Q(deposit_address_id=intent.deposit_address_id) | Q(assignment__payment_intent=intent),
                                orphaned_at__isnull=True, token__isnull=False)
        # A transfer held from a blocked sender (held or kept) is not the customer's payment: funding ignores it
        .exclude(held_deposit__status__in=(HeldDeposit.Status.HELD, HeldDeposit.Status.KEPT))
        .select_related("network", "token", "unmatched_deposit", "assignment")
        .order_by("block_number", "log_index", "id")
    )
    credited = set(Charge.objects.filter(payment_intent=intent, status=Charge.Status.SUCCEEDED)
                   .values_list("transfer_id", flat=True))
    credited |= set(ChargeDust.objects.filter(charge__payment_intent=intent, reversed=False)
                    .values_list("transfer_id", flat=True))
    closed = intent.status == PaymentIntent.Status.CANCELED
    paid, late = [], []
    for transfer in transfers:
        assignment = getattr(transfer, "assignment", None)
        if assignment is not None:
            if assignment.payment_intent_id == intent.id:
                paid.append(transfer)
            continue  # assigned here: this intent's; assigned elsewhere: that intent's
        if (transfer.token_id not in accepted or transfer.network.livemode != intent.livemode
                or transfer.network.api_name not in intent.networks):
            continue
        unmatched = getattr(transfer, "unmatched_deposit", None)
        if transfer.id in credited or (not closed and unmatched is None):
            paid.append(transfer)
        elif closed and (unmatched is None and not transfer.is_final
                         or unmatched is not None and unmatched.reason == UnmatchedDeposit.Reason.INTENT_CLOSED):
            late.append(transfer)  # not final yet, or final and recorded as a deposit to a closed intent
    return CheckoutFunds(paid=paid, late=late)
