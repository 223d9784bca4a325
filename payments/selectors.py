import hmac

from django.db.models import Prefetch, QuerySet

from wallets.models import ChainCursor

from .models import Charge, PaymentIntent, PaymentOption


def _with_details(qs: QuerySet) -> QuerySet:
    return qs.select_related("deposit_address", "merchant").prefetch_related(
        Prefetch("options", queryset=PaymentOption.objects.select_related("token__network").order_by("token__network_id", "token__currency"))
    )


def payment_intents_for(*, merchant, livemode: bool) -> QuerySet:
    return _with_details(PaymentIntent.objects.filter(merchant=merchant, livemode=livemode))


def payment_intent_get(*, merchant, livemode: bool, intent_id: str) -> PaymentIntent | None:
    return payment_intents_for(merchant=merchant, livemode=livemode).filter(pk=intent_id).first()


def payment_intent_by_client_secret(client_secret: str) -> PaymentIntent | None:
    """For the hosted checkout: the secret alone grants a view of this one intent."""
    intent_id, sep, _ = client_secret.partition("_secret_")
    if not sep or not intent_id.startswith("pi_"):
        return None
    intent = _with_details(PaymentIntent.objects.filter(pk=intent_id)).first()
    if intent is None:
        return None
    return intent if hmac.compare_digest(intent.client_secret, client_secret) else None


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
