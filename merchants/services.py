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
from django.db.models import Q
from django.utils import timezone

from audit.services import ObjectRef, audit_record, model_snapshot
from gateway import crypto
from gateway.errors import DomainError
from gateway.ids import random_token
from gateway.metadata import metadata_merge

from . import emails, permissions
from .keys import generate_key, hash_key, redact
from .branding import LOGO_CONTENT_TYPE, Logo
from .models import (
    ApiKey, Invitation, Membership, Merchant, MerchantLogo, NotificationSent, Role, SecretsKey, WebhookEndpoint,
)
from .secrets import DEK_AD, SECRETS_KEKS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw: str  # shown once, never stored


@transaction.atomic
def merchant_create(*, email: str, name: str = "", password: str | None = None, actor=None, request=None,
                    user_active: bool = True) -> Merchant:
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
        user = get_user_model().objects.create_user(username=email, email=email, password=password,
                                                    is_active=user_active)
    merchant = Merchant.objects.create(email=email, name=name or email.split("@")[0], user=user)
    if user is not None:
        Membership.objects.create(merchant=merchant, user=user, role=Role.OWNER)
    audit_record(actor=actor, action="merchant.create", obj=merchant, after=model_snapshot(merchant), request=request)
    return merchant


@transaction.atomic
def merchant_signup(*, email: str, name: str, password: str, request=None) -> Merchant | None:
    """Self sign-up: a merchant, its owner's login (inactive until the emailed link is followed) and the owner
    membership, recorded as `merchant.create` by the actor "signup" (with the request's IP). An email already known
    gets a mail saying so instead (None): the page answers the same either way, so sign-up never tells whether an
    address has an account."""
    email = email.strip().lower()
    if (Merchant.objects.filter(email__iexact=email).exists()
            or get_user_model().objects.filter(username__iexact=email).exists()):
        transaction.on_commit(lambda: emails.signup_existing_send(email=email))
        return None
    merchant = merchant_create(email=email, name=name, password=password, user_active=False, actor="signup",
                               request=request)
    user = merchant.user
    transaction.on_commit(lambda: emails.signup_verification_send(user=user))
    return merchant


@transaction.atomic
def user_email_verify(*, user_id: int, request=None):
    """The sign-up's email link was followed: the login may log in (and enrols its authenticator app then)."""
    user = get_user_model().objects.select_for_update().filter(pk=user_id).first()
    if user is not None and not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit_record(actor=user, action="user.email_verify", obj=user, before={"is_active": False},
                     after={"is_active": True}, request=request)
    return user


# Team: invitations by email, roles, removal. The merchant's row is locked (NO KEY) by every change of its team, so
# two admins at once can never both remove "the other" last owner.
INVITATION_TTL = timedelta(days=7)


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # in the emailed link only, never stored


def _team_locked(merchant: Merchant) -> None:
    Merchant.objects.select_for_update(no_key=True).filter(pk=merchant.pk).first()


def _role_grant_check(*, by_role: str, role: str, param: str = "role") -> None:
    if role not in Role.values:
        raise DomainError(code="role_invalid", param=param, message=f"{role!r} is not a role.")
    if role not in permissions.role_grantable_by(by_role):
        raise DomainError(code="role_not_allowed", param=param,
                          message=f"A member with the role {Role(by_role).label} cannot grant {Role(role).label}.")


@transaction.atomic
def invitation_create(*, merchant: Merchant, email: str, role: str, invited_by, by_role: str,
                      request=None) -> IssuedInvitation:
    """An invitation emailed to `email` (after commit). A pending one to the same address is replaced."""
    email = email.strip().lower()
    _role_grant_check(by_role=by_role, role=role)
    _team_locked(merchant)
    if Membership.objects.filter(merchant=merchant, user__username__iexact=email).exists():
        raise DomainError(code="member_exists", param="email", message=f"{email} is already in the team.")
    now = timezone.now()
    replaced = list(Invitation.objects.filter(merchant=merchant, email__iexact=email, accepted_at__isnull=True,
                                              revoked_at__isnull=True).values_list("pk", flat=True))
    Invitation.objects.filter(pk__in=replaced).update(revoked_at=now)
    token = random_token(32)
    invitation = Invitation.objects.create(
        merchant=merchant, email=email, role=role, token_hash=hash_key(token), invited_by=invited_by,
        expires_at=now + INVITATION_TTL,
    )
    transaction.on_commit(lambda: emails.invitation_send(invitation=invitation, token=token))
    audit_record(actor=invited_by, action="invitation.create", obj=invitation,
                 before={"replaced": [str(pk) for pk in replaced]} if replaced else None,
                 after=model_snapshot(invitation, ["merchant", "email", "role", "invited_by", "expires_at"]),
                 request=request)
    return IssuedInvitation(invitation=invitation, token=token)


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor=None, request=None) -> Invitation:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="invitation.revoke", obj=invitation, before={"revoked_at": None},
                     after={"email": invitation.email, "revoked_at": invitation.revoked_at}, request=request)
    return invitation


def invitation_usable(invitation: Invitation | None) -> bool:
    return (invitation is not None and invitation.accepted_at is None and invitation.revoked_at is None
            and invitation.expires_at > timezone.now())


@transaction.atomic
def invitation_accept(*, token: str, password: str | None = None, request=None) -> Membership:
    """The invited address joins the team: its login if it has one, else a new login with `password` (which
    enrols its authenticator app at the first login). Following the emailed link proves the address, so a login
    waiting for its sign-up verification is verified too. A token is used once."""
    invitation = Invitation.objects.select_for_update().filter(token_hash=hash_key(token)).first()
    if not invitation_usable(invitation):
        raise DomainError(code="invitation_invalid", message="This invitation has expired or was already used.")
    users = get_user_model().objects
    user = users.select_for_update().filter(username__iexact=invitation.email).first()
    if user is None:
        if not password:
            raise DomainError(code="parameter_missing", param="password", message="Choose a password.")
        user = users.create_user(username=invitation.email, email=invitation.email, password=password)
    elif not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
    _team_locked(invitation.merchant)
    membership, _ = Membership.objects.get_or_create(
        merchant=invitation.merchant, user=user, defaults={"role": invitation.role})
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_record(actor=user, action="invitation.accept", obj=invitation, before={"accepted_at": None},
                 after={"accepted_at": invitation.accepted_at, "membership": membership.pk, "user": user.pk,
                        "role": membership.role}, request=request)
    return membership


def _last_owner_check(membership: Membership, *, message: str) -> None:
    if membership.role == Role.OWNER and not Membership.objects.filter(
            merchant_id=membership.merchant_id, role=Role.OWNER).exclude(pk=membership.pk).exists():
        raise DomainError(code="last_owner", param="role", message=message)


@transaction.atomic
def membership_role_change(*, membership: Membership, role: str, by_role: str, actor=None,
                           request=None) -> Membership:
    """A member's new role. Only an owner changes an owner's role; the last owner stays an owner."""
    _team_locked(membership.merchant)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _role_grant_check(by_role=by_role, role=role)
    if membership.role == Role.OWNER:
        _role_grant_check(by_role=by_role, role=Role.OWNER)
        if role != Role.OWNER:
            _last_owner_check(membership, message="The team needs an owner: make another member owner first.")
    if membership.role != role:
        before = {"role": membership.role}
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(actor=actor, action="membership.role_change", obj=membership, before=before,
                     after={"role": role, "user": membership.user_id}, request=request)
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, by_role: str, actor=None, request=None) -> None:
    """A member leaves the team (their login stays, with their other teams). Only an owner removes an owner; the
    last owner cannot be removed."""
    _team_locked(membership.merchant)
    membership = Membership.objects.select_for_update().filter(pk=membership.pk).first()
    if membership is None:
        return
    if membership.role == Role.OWNER:
        _role_grant_check(by_role=by_role, role=Role.OWNER)
        _last_owner_check(membership, message="The team needs an owner: make another member owner first.")
    before = model_snapshot(membership)
    ref = ObjectRef(membership._meta.label_lower, str(membership.pk))
    membership.delete()
    audit_record(actor=actor, action="membership.remove", obj=ref, before=before, request=request)


def _api_key_issue(*, merchant: Merchant, kind: str, livemode: bool, name: str, permissions: dict | None) -> IssuedKey:
    raw = generate_key(ApiKey.PREFIXES[ApiKey.Kind(kind)], livemode)
    key = ApiKey.objects.create(
        merchant=merchant, kind=kind, livemode=livemode, name=name, key_hash=hash_key(raw), redacted=redact(raw),
        permissions=permissions or {},
    )
    return IssuedKey(api_key=key, raw=raw)


# "Last used" is a minute's precision: each process writes it at most once a minute per key, and the UPDATE only
# touches a row whose value is older than that, so a busy key costs one small write a minute, not one per request.
API_KEY_LAST_USED_PRECISION = timedelta(minutes=1)


def api_key_mark_used(*, key_id: str, now) -> bool:
    """Record that the key was just used (the portal's "Last used"). Returns whether the row was written."""
    return bool(ApiKey.objects.filter(pk=key_id).filter(
        Q(last_used__isnull=True) | Q(last_used__lt=now - API_KEY_LAST_USED_PRECISION)
    ).update(last_used=now))


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
        endpoint.consecutive_failures = 0
        fields += ["status", "disabled_reason", "failing_since", "consecutive_failures"]
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


# --- Risk controls: freeze and unfreeze ----------------------------------------------------------------------------


@transaction.atomic
def merchant_freeze(*, merchant: Merchant, reason: str, actor=None, request=None) -> Merchant:
    """Stop the account taking payments (API creation and confirmation refused, checkout closed); reads and webhook
    deliveries go on. Refused when the account is frozen already."""
    merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
    if merchant.is_frozen:
        raise DomainError(code="account_already_frozen", message="This account is frozen already.")
    if not reason.strip():
        raise DomainError(code="parameter_missing", message="A reason is required to freeze an account.",
                          param="reason")
    merchant.frozen_at = timezone.now()
    merchant.frozen_reason = reason.strip()[:500]
    merchant.save(update_fields=["frozen_at", "frozen_reason"])
    logger.warning("merchant %s frozen: %s", merchant.pk, merchant.frozen_reason)
    audit_record(actor=actor, action="merchant.freeze", obj=merchant, before={"frozen_at": None},
                 after={"frozen_at": merchant.frozen_at}, reason=merchant.frozen_reason, request=request)
    return merchant


@transaction.atomic
def merchant_unfreeze(*, merchant: Merchant, actor=None, request=None) -> Merchant:
    merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
    if not merchant.is_frozen:
        raise DomainError(code="account_not_frozen", message="This account is not frozen.")
    before = {"frozen_at": merchant.frozen_at, "frozen_reason": merchant.frozen_reason}
    merchant.frozen_at = None
    merchant.frozen_reason = ""
    merchant.save(update_fields=["frozen_at", "frozen_reason"])
    logger.warning("merchant %s unfrozen", merchant.pk)
    audit_record(actor=actor, action="merchant.unfreeze", obj=merchant, before=before, after={"frozen_at": None},
                 request=request)
    return merchant


# --- Settings (the portal's settings pages, docs/portal.md "Settings") -------------------------------------------
# One service per section; the values come validated from the section's form. Each locks the merchant's row, writes
# the fields that changed and records them (before/after) in the same transaction; a save that changes nothing
# writes nothing.


def _merchant_settings_save(*, merchant: Merchant, changes: dict, action: str, actor, request,
                            extra_before: dict | None = None, extra_after: dict | None = None) -> Merchant:
    locked = Merchant.objects.select_for_update(no_key=True).get(pk=merchant.pk)
    fields = [name for name, value in changes.items() if getattr(locked, name) != value]
    before = {name: getattr(locked, name) for name in fields}
    for name in fields:
        setattr(locked, name, changes[name])
    if fields:
        locked.save(update_fields=fields)
    if fields or extra_after is not None:
        audit_record(actor=actor, action=action, obj=locked, before={**before, **(extra_before or {})},
                     after={**{name: changes[name] for name in fields}, **(extra_after or {})}, request=request)
    return locked


@transaction.atomic
def merchant_profile_update(*, merchant: Merchant, public_name: str, support_email: str, website_url: str,
                            statement_descriptor: str, actor=None, request=None) -> Merchant:
    """The business profile customers see: public name, support email, website (the checkout's default return
    link) and statement descriptor."""
    return _merchant_settings_save(merchant=merchant, action="merchant.profile_update", actor=actor, request=request,
                                   changes={"public_name": public_name, "support_email": support_email,
                                            "website_url": website_url, "statement_descriptor": statement_descriptor})


@transaction.atomic
def merchant_branding_update(*, merchant: Merchant, accent_color: str, logo: Logo | None = None,
                             logo_remove: bool = False, actor=None, request=None) -> Merchant:
    """The checkout's accent colour (#rrggbb lower case, or "" for the default) and logo: a new one (already
    processed by merchants.branding.logo_process) replaces the old, `logo_remove` drops it. The audit record names
    the logo by its SHA-256."""
    Merchant.objects.select_for_update(no_key=True).filter(pk=merchant.pk).first()  # the merchant first, as everywhere
    current = MerchantLogo.objects.select_for_update().filter(merchant_id=merchant.pk).first()
    old_sha = current.sha256 if current is not None else None
    new_sha = old_sha
    if logo is not None:
        MerchantLogo.objects.update_or_create(merchant_id=merchant.pk, defaults={
            "image": logo.image, "content_type": LOGO_CONTENT_TYPE, "width": logo.width, "height": logo.height,
            "sha256": logo.sha256})
        new_sha = logo.sha256
    elif logo_remove and current is not None:
        current.delete()
        new_sha = None
    logo_changed = new_sha != old_sha
    return _merchant_settings_save(
        merchant=merchant, action="merchant.branding_update", actor=actor, request=request,
        changes={"brand_accent_color": accent_color},
        extra_before={"logo_sha256": old_sha} if logo_changed else None,
        extra_after={"logo_sha256": new_sha} if logo_changed else None,
    )


@transaction.atomic
def merchant_checkout_settings_update(*, merchant: Merchant, payment_expiry_minutes: int,
                                      underpayment_tolerance_bps: int, accept_late_payments: bool, actor=None,
                                      request=None) -> Merchant:
    """How new intents wait and what counts as paid (the bounds: merchants.models, checked by the form and by the
    database's constraints). Intents already created keep their expiry."""
    return _merchant_settings_save(
        merchant=merchant, action="merchant.checkout_settings_update", actor=actor, request=request,
        changes={"payment_expiry_minutes": payment_expiry_minutes,
                 "underpayment_tolerance_bps": underpayment_tolerance_bps,
                 "accept_late_payments": accept_late_payments})


@transaction.atomic
def merchant_payment_methods_update(*, merchant: Merchant, enabled_networks: list[str], enabled_tokens: list[str],
                                    actor=None, request=None) -> Merchant:
    """The networks and tokens new intents offer by default (API names, token currencies; checked against the
    active ones by the form in payments.portal, which knows them). Empty lists mean every active one."""
    return _merchant_settings_save(
        merchant=merchant, action="merchant.payment_methods_update", actor=actor, request=request,
        changes={"enabled_networks": sorted(enabled_networks), "enabled_tokens": sorted(enabled_tokens)})


@transaction.atomic
def merchant_notifications_update(*, merchant: Merchant, notification_emails: list[str],
                                  notify_payment_succeeded: bool, notify_webhook_failing: bool,
                                  notify_daily_summary: bool, actor=None, request=None) -> Merchant:
    """Who gets the merchant's emails (empty: the owners) and which ones (merchants.emails)."""
    return _merchant_settings_save(
        merchant=merchant, action="merchant.notifications_update", actor=actor, request=request,
        changes={"notification_emails": list(notification_emails),
                 "notify_payment_succeeded": notify_payment_succeeded,
                 "notify_webhook_failing": notify_webhook_failing, "notify_daily_summary": notify_daily_summary})


def notification_claim(*, merchant_id: str, kind: str, key: str) -> bool:
    """Claim the one sending of an email (in the caller's transaction, which sends it and commits): True the first
    time, False when it was claimed already (by a run that committed, or one still running, which this waits for)."""
    _, created = NotificationSent.objects.get_or_create(merchant_id=merchant_id, kind=kind, key=key[:128])
    return created
