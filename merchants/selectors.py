from django.db.models import Q
from django.utils import timezone

from .keys import hash_key
from .models import ApiKey, Merchant


def api_key_active_by_raw(raw: str) -> ApiKey | None:
    now = timezone.now()
    return (
        ApiKey.objects.select_related("merchant")
        .filter(key_hash=hash_key(raw), merchant__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )


def merchant_by_id_or_email(value: str) -> Merchant | None:
    return Merchant.objects.filter(Q(id=value) | Q(email__iexact=value)).first()


def api_keys_for_merchant(*, merchant: Merchant, livemode: bool | None = None):
    qs = ApiKey.objects.filter(merchant=merchant).order_by("-created")
    if livemode is not None:
        qs = qs.filter(livemode=livemode)
    return qs
