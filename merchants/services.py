"""Writes for merchants, their API keys and their webhook endpoints. Each records itself in the audit trail, in its
transaction: `actor` (a user, an API key, "command:<name>"; by default the request's) and `request` (IP, request id)
say who and from where."""
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record, model_snapshot
from gateway import crypto
from gateway.errors import DomainError
from gateway.ids import random_token
from gateway.metadata import metadata_merge

from .keys import generate_key, hash_key, redact
from .models import ApiKey, Merchant, SecretsKey, WebhookEndpoint
from .secrets import DEK_AD, SECRETS_KEKS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw: str  # shown once, never stored


@transaction.atomic
def merchant_create(*, email: str, name: str = "", password: str | None = None, actor=None, request=None) -> Merchant:
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise DomainError(code="email_invalid", message=f"{email!r} is not a valid email address.",
                          param="email") from None
    if Merchant.objects.filter(email__iexact=email).exists():
        raise DomainError(code="merchant_exists", message=f"A merchant with email {email} already exists.", param="email")
    user = None
    if password:
        if get_user_model().objects.filter(username=email).exists():
            raise DomainError(
                code="user_exists", message=f"A login with user name {email} already exists.", param="email"
            )
        user = get_user_model().objects.create_user(username=email, email=email, password=password)
    merchant = Merchant.objects.create(email=email, name=name or email.split("@")[0], user=user)
    audit_record(actor=actor, action="merchant.create", obj=merchant, after=model_snapshot(merchant), request=request)
    return merchant


def _api_key_issue(*, merchant: Merchant, kind: str, livemode: bool, name: str, permissions: dict | None) -> IssuedKey:
    raw = generate_key(ApiKey.PREFIXES[ApiKey.Kind(kind)], livemode)
    key = ApiKey.objects.create(
        merchant=merchant, kind=kind, livemode=livemode, name=name, key_hash=hash_key(raw), redacted=redact(raw),
        permissions=permissions or {},
    )
    return IssuedKey(api_key=key, raw=raw)


@transaction.atomic
def api_key_create(
    *, merchant: Merchant, kind: str = ApiKey.Kind.SECRET, livemode: bool = False, name: str = "",
    permissions: dict | None = None, actor=None, request=None,
) -> IssuedKey:
    issued = _api_key_issue(merchant=merchant, kind=kind, livemode=livemode, name=name, permissions=permissions)
    audit_record(actor=actor, action="api_key.create", obj=issued.api_key, after=model_snapshot(issued.api_key),
                 request=request)
    return issued


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor=None, request=None) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    before = model_snapshot(key, ["expires_at"])
    now = timezone.now()
    if key.expires_at is None or key.expires_at > now:
        key.expires_at = now
        key.save(update_fields=["expires_at"])
        audit_record(actor=actor, action="api_key.revoke", obj=key, before=before,
                     after=model_snapshot(key, ["expires_at"]), request=request)
    return key


# As Stripe's dashboard: the old key of a roll works on for at most 7 days.
API_KEY_ROLL_MAX_GRACE = timedelta(days=7)


@transaction.atomic
def api_key_roll(*, api_key: ApiKey, grace: timedelta = timedelta(hours=0), actor=None, request=None) -> IssuedKey:
    """A new key with the same kind, mode, name and permissions; the old one stops working after `grace`
    (0 to API_KEY_ROLL_MAX_GRACE). A key is rolled once: a key already set to expire
    (rolled before, or its roll submitted twice) is refused, so no second replacement exists that nobody was shown;
    revoking it ends it at once."""
    if not timedelta(0) <= grace <= API_KEY_ROLL_MAX_GRACE:
        raise DomainError(code="parameter_invalid", param="expires_in_hours",
                          message=f"The old key's grace period must be 0 to {API_KEY_ROLL_MAX_GRACE}.")
    old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    now = timezone.now()
    if old.expires_at is not None and old.expires_at <= now:
        raise DomainError(code="api_key_expired", message=f"The key {old.redacted} has expired: it cannot be rolled.")
    if old.expires_at is not None:
        raise DomainError(
            code="api_key_already_rolled",
            message=f"The key {old.redacted} was already rolled and stops working at {old.expires_at:%Y-%m-%d %H:%M} "
                    "UTC: revoke it to stop it now.",
        )
    old.expires_at = now + grace
    old.save(update_fields=["expires_at"])
    issued = _api_key_issue(
        merchant=old.merchant, kind=old.kind, livemode=old.livemode, name=old.name, permissions=old.permissions
    )
    audit_record(actor=actor, action="api_key.roll", obj=old, before={"expires_at": None},
                 after={**model_snapshot(old, ["expires_at"]), "replaced_by": issued.api_key.id}, request=request)
    return issued


# Stripe's limit: at most 16 webhook endpoints per account and mode.
WEBHOOK_ENDPOINT_LIMIT = 16
WEBHOOK_SECRET_GRACE = timedelta(hours=24)


def webhook_secret_generate() -> str:
    return "whsec_" + random_token(32)


@transaction.atomic
def webhook_endpoint_create(
    *, merchant: Merchant, livemode: bool, url: str, enabled_events: list[str], description: str = "",
    metadata: dict | None = None, actor=None, request=None,
) -> WebhookEndpoint:
    """A new endpoint with a fresh signing secret. `url` and `enabled_events` are already validated
    (gateway.ssrf.url_validate, merchants.event_types). The merchant's row lock makes the limit hold under concurrent
    creations; NO KEY, so that inserts referencing the merchant (their foreign-key checks) never wait for it."""
    Merchant.objects.select_for_update(no_key=True).filter(pk=merchant.pk).first()
    count = WebhookEndpoint.objects.filter(merchant=merchant, livemode=livemode, deleted=False).count()
    if count >= WEBHOOK_ENDPOINT_LIMIT:
        raise DomainError(
            code="webhook_endpoint_limit_reached", param="url",
            message=f"You have reached the maximum of {WEBHOOK_ENDPOINT_LIMIT} {'live' if livemode else 'test'} "
                    "webhook endpoints. Delete one before adding another.",
        )
    endpoint = WebhookEndpoint.objects.create(
        merchant=merchant, livemode=livemode, url=url, enabled_events=list(enabled_events),
        description=description, metadata={k: v for k, v in (metadata or {}).items() if v != ""},
        secret=webhook_secret_generate(),
    )
    audit_record(actor=actor, action="webhook_endpoint.create", obj=endpoint, after=model_snapshot(endpoint),
                 request=request)
    return endpoint


def _endpoint_locked(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)


@transaction.atomic
def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, url: str | None = None, enabled_events: list[str] | None = None,
    description: str | None = None, metadata: dict | None = None, clear_metadata: bool = False,
    disabled: bool | None = None, actor=None, request=None,
) -> WebhookEndpoint:
    """Only the given fields change. Metadata merges as in Stripe (an empty value unsets a key, `clear_metadata`
    unsets them all). Enabling again clears the disabled reason and the failure clock, so a fixed endpoint starts
    afresh."""
    endpoint = _endpoint_locked(endpoint)
    before = model_snapshot(endpoint)
    fields = ["updated"]
    if url is not None:
        endpoint.url = url
        fields.append("url")
    if enabled_events is not None:
        endpoint.enabled_events = list(enabled_events)
        fields.append("enabled_events")
    if description is not None:
        endpoint.description = description
        fields.append("description")
    if clear_metadata or metadata:
        endpoint.metadata = metadata_merge(endpoint.metadata, metadata, clear=clear_metadata)
        fields.append("metadata")
    if disabled is True and endpoint.status != WebhookEndpoint.Status.DISABLED:
        endpoint.status = WebhookEndpoint.Status.DISABLED
        endpoint.disabled_reason = "Disabled by the merchant."
        fields += ["status", "disabled_reason"]
    elif disabled is False and endpoint.status != WebhookEndpoint.Status.ENABLED:
        endpoint.status = WebhookEndpoint.Status.ENABLED
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
        fields += ["status", "disabled_reason", "failing_since"]
    endpoint.save(update_fields=fields)
    audit_record(actor=actor, action="webhook_endpoint.update", obj=endpoint, before=before,
                 after=model_snapshot(endpoint), request=request)
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor=None, request=None) -> WebhookEndpoint:
    """Soft delete: no longer listed, retrieved nor delivered to; the row stays for its deliveries' history."""
    endpoint = _endpoint_locked(endpoint)
    if not endpoint.deleted:
        endpoint.deleted = True
        endpoint.save(update_fields=["deleted", "updated"])
        audit_record(actor=actor, action="webhook_endpoint.delete", obj=endpoint, before={"deleted": False},
                     after={"deleted": True}, request=request)
    return endpoint


@transaction.atomic
def webhook_endpoint_secret_roll(
    *, endpoint: WebhookEndpoint, grace: timedelta = WEBHOOK_SECRET_GRACE, now=None, actor=None, request=None,
) -> WebhookEndpoint:
    """A new signing secret; the current one keeps signing beside it for `grace` (none when grace <= 0), so the
    merchant can deploy the new secret without losing a delivery. A second roll within the grace period drops the
    oldest secret at once."""
    endpoint = _endpoint_locked(endpoint)
    now = now or timezone.now()
    if grace > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + grace
    else:
        endpoint.previous_secret = ""
        endpoint.previous_secret_expires_at = None
    endpoint.secret = webhook_secret_generate()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated"])
    audit_record(actor=actor, action="webhook_endpoint.secret_roll", obj=endpoint,
                 after={"previous_secret_expires_at": endpoint.previous_secret_expires_at}, request=request)
    return endpoint


@dataclass(frozen=True)
class SecretsKekRotation:
    kek_fingerprint: str  # the current GATEWAY_SECRETS_KEK's
    rewrapped: list[str]  # ids of the data keys re-wrapped now
    unchanged: list[str]  # ids of those the current KEK already wrapped


@transaction.atomic
def secrets_kek_rotate(*, actor=None) -> SecretsKekRotation:
    """Re-wrap the secrets' data keys with the current GATEWAY_SECRETS_KEK; no secret is re-encrypted.

    Unwraps with whichever known KEK (current or GATEWAY_SECRETS_KEK_PREVIOUS) wrapped each key. Readers never wait
    and never fail: running processes hold the unwrapped data keys, and a process (re)started with either KEK current
    knows the other through GATEWAY_SECRETS_KEK_PREVIOUS. A no-op for keys the current KEK already wrapped."""
    current = crypto.kek_fingerprint(SECRETS_KEKS.current())
    rewrapped, unchanged = [], []
    for key in SecretsKey.objects.select_for_update().order_by("created"):
        if key.kek_fingerprint == current:
            unchanged.append(key.id)
            continue
        previous = key.kek_fingerprint
        key.wrapped_dek, key.kek_fingerprint = crypto.dek_rewrap(
            wrapped_dek=bytes(key.wrapped_dek), wrapped_by=previous, keks=SECRETS_KEKS, associated_data=DEK_AD
        )
        key.rewrapped = timezone.now()
        key.save(update_fields=["wrapped_dek", "kek_fingerprint", "rewrapped"])
        logger.info("Secrets data key %s re-wrapped from KEK %s to %s", key.id, previous, key.kek_fingerprint)
        rewrapped.append(key.id)
    if rewrapped:
        audit_record(actor=actor, action="secrets_kek.rotate", after={"kek_fingerprint": current, "rewrapped": rewrapped})
    return SecretsKekRotation(kek_fingerprint=current, rewrapped=rewrapped, unchanged=unchanged)
