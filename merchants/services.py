"""Writes for merchants and their API keys."""
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from gateway.errors import DomainError

from .keys import generate_key, hash_key, redact
from .models import ApiKey, Merchant


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw: str  # shown once, never stored


@transaction.atomic
def merchant_create(*, email: str, name: str = "", password: str | None = None) -> Merchant:
    email = email.strip().lower()
    if Merchant.objects.filter(email__iexact=email).exists():
        raise DomainError(code="merchant_exists", message=f"A merchant with email {email} already exists.", param="email")
    user = None
    if password:
        user = get_user_model().objects.create_user(username=email, email=email, password=password)
    return Merchant.objects.create(email=email, name=name or email.split("@")[0], user=user)


def api_key_create(
    *, merchant: Merchant, kind: str = ApiKey.Kind.SECRET, livemode: bool = False, name: str = "",
    permissions: dict | None = None,
) -> IssuedKey:
    raw = generate_key(ApiKey.PREFIXES[ApiKey.Kind(kind)], livemode)
    key = ApiKey.objects.create(
        merchant=merchant, kind=kind, livemode=livemode, name=name, key_hash=hash_key(raw), redacted=redact(raw),
        permissions=permissions or {},
    )
    return IssuedKey(api_key=key, raw=raw)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    now = timezone.now()
    if key.expires_at is None or key.expires_at > now:
        key.expires_at = now
        key.save(update_fields=["expires_at"])
    return key


@transaction.atomic
def api_key_roll(*, api_key: ApiKey, grace: timedelta = timedelta(hours=0)) -> IssuedKey:
    """A new key with the same kind, mode and permissions; the old one stops working after `grace`."""
    old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    now = timezone.now()
    if old.expires_at is not None and old.expires_at <= now:
        raise DomainError(code="api_key_expired", message="An expired key cannot be rolled.")
    old.expires_at = now + grace
    old.save(update_fields=["expires_at"])
    return api_key_create(
        merchant=old.merchant, kind=old.kind, livemode=old.livemode, name=old.name, permissions=old.permissions
    )
