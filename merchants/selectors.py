import re
import time

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from django.contrib.auth import get_user_model

from .keys import hash_key
from .branding import logo_data_url, readable_text_color
from .models import ACCENT_COLOR_RE, ApiKey, Invitation, Membership, Merchant, MerchantLogo, WebhookEndpoint


def api_key_active_by_raw(raw: str) -> ApiKey | None:
    """The key (with its merchant) if it exists, has not expired and its merchant is active; else None.

    Found keys are remembered in this process for GATEWAY_API_KEY_CACHE_SECONDS (0: never; production: 2 s), so
    a busy API does not read the same key on every request. The price: revoking a key (or deactivating its merchant)
    takes effect in the processes that used it within that many seconds, not at once. An expiry already set when the
    key was read (a rolled key's grace period) is checked on every use, to the microsecond. Unknown keys are never
    remembered. The returned rows are shared by the requests of that window: read them, never change them."""
    digest = hash_key(raw)
    ttl = settings.GATEWAY_API_KEY_CACHE_SECONDS
    if ttl > 0:
        hit = _key_cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            key = hit[1]
            return key if key.expires_at is None or key.expires_at > timezone.now() else None
    now = timezone.now()
    key = (
        ApiKey.objects.select_related("merchant")
        .filter(key_hash=digest, merchant__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if ttl > 0 and key is not None:
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[digest] = (time.monotonic() + ttl, key)
    return key


_KEY_CACHE_MAX = 10_000
_key_cache: dict[str, tuple[float, ApiKey]] = {}


def api_key_cache_clear() -> None:
    _key_cache.clear()


def merchant_by_id_or_email(value: str) -> Merchant | None:
    return Merchant.objects.filter(Q(id=value) | Q(email__iexact=value)).first()


def api_keys_for_merchant(*, merchant: Merchant, livemode: bool | None = None):
    qs = ApiKey.objects.filter(merchant=merchant).order_by("-created")
    if livemode is not None:
        qs = qs.filter(livemode=livemode)
    return qs


def api_keys_usable_for_merchant(*, merchant: Merchant):
    """The merchant's keys that work now: never expired, or a rolled key still in its grace period."""
    return api_keys_for_merchant(merchant=merchant).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )


def api_key_for_merchant(*, merchant: Merchant, key_id: str) -> ApiKey | None:
    return api_keys_for_merchant(merchant=merchant).filter(pk=key_id).first()


def webhook_endpoints_for(*, merchant: Merchant, livemode: bool):
    """The caller's endpoints in its mode, deleted ones left out."""
    return WebhookEndpoint.objects.filter(merchant=merchant, livemode=livemode, deleted=False)


def webhook_endpoint_get(*, merchant: Merchant, livemode: bool, endpoint_id: str) -> WebhookEndpoint | None:
    return webhook_endpoints_for(merchant=merchant, livemode=livemode).filter(pk=endpoint_id).first()


def webhook_endpoint_cursor(*, merchant: Merchant, livemode: bool, endpoint_id: str) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(merchant=merchant, livemode=livemode, pk=endpoint_id).only(
        "id", "created"
    ).first()


def webhook_endpoint_signing_secrets(endpoint: WebhookEndpoint, *, now) -> list[str]:
    """The secrets a delivery is signed with: the current one first, then the previous one while its grace period
    lasts (each gives a `v1=` signature, as Stripe sends during a roll)."""
    secrets = [endpoint.secret]
    if (endpoint.previous_secret and endpoint.previous_secret_expires_at is not None
            and endpoint.previous_secret_expires_at > now):
        secrets.append(endpoint.previous_secret)
    return secrets


def team_members(*, merchant: Merchant):
    return Membership.objects.filter(merchant=merchant).select_related("user").order_by("created", "id")


def team_member(*, merchant: Merchant, member_id: int) -> Membership | None:
    return team_members(merchant=merchant).filter(pk=member_id).first()


def invitations_pending(*, merchant: Merchant):
    return Invitation.objects.filter(merchant=merchant, accepted_at__isnull=True, revoked_at__isnull=True,
                                     expires_at__gt=timezone.now()).order_by("-created")


def invitation_for_merchant(*, merchant: Merchant, invitation_id: str) -> Invitation | None:
    return Invitation.objects.filter(merchant=merchant, pk=invitation_id).first()


def invitation_by_token(*, token: str) -> Invitation | None:
    return Invitation.objects.select_related("merchant").filter(token_hash=hash_key(token)).first()


def user_by_email(*, email: str):
    return get_user_model().objects.filter(username__iexact=email).first()


def checkout_brand(*, merchant: Merchant) -> dict:
    """What the hosted checkout shows of the merchant (templates/checkout/_brand.html): its public name, its logo as
    a data: URL (or ""), its accent colour (#rrggbb or "") with the text colour that reads on it, its support email
    and its website (the return link when an intent has none)."""
    logo = MerchantLogo.objects.filter(merchant_id=merchant.pk).values_list("image", "content_type").first()
    # Written into the page's <style>: only a #rrggbb value ever gets there (the form and a check constraint hold
    # the same rule; this is the last line).
    accent = merchant.brand_accent_color if re.fullmatch(ACCENT_COLOR_RE, merchant.brand_accent_color or "") else ""
    name = merchant.display_name
    return {
        "name": name,
        "initial": (name.strip()[:1] or "?").upper(),
        "logo_url": logo_data_url(*logo) if logo else "",
        "accent": accent,
        "accent_text": readable_text_color(accent) if accent else "",
        "support_email": merchant.support_email,
        "website_url": merchant.website_url,
    }
