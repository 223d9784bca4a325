"""API authentication as in Stripe: `Authorization: Bearer <key>` or HTTP Basic with the key as user name."""
import base64
import binascii
import time
from dataclasses import dataclass

from django.utils import timezone

from rest_framework import authentication, exceptions, permissions

from gateway import ratelimit

from . import selectors, services
from .keys import KEY_RE, hash_key, redact
from .models import ApiKey, Merchant

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
)


@dataclass(frozen=True)
class ApiCaller:
    """Who is calling: the merchant and mode every query is scoped to, and what the key may do."""

    merchant: Merchant
    livemode: bool
    key_id: str
    kind: str
    permissions: dict

    def can(self, resource: str, access: str) -> bool:
        if self.kind == ApiKey.Kind.SECRET:
            return True
        if self.kind == ApiKey.Kind.PUBLISHABLE:
            return False
        granted = self.permissions.get(resource, "none")
        return granted == "write" or (access == "read" and granted == "read")


def _raw_key_from_header(header: str) -> str:
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer":
        return value
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Invalid Basic authorization header.") from None
        return decoded.partition(":")[0]
    raise exceptions.AuthenticationFailed(
        "Invalid Authorization header: use 'Bearer YOUR_SECRET_KEY' or HTTP Basic with the key as user name."
    )


_marked: dict[str, float] = {}  # key id -> when this process last wrote its `last_used` (monotonic)


def _mark_used(key_id: str) -> None:
    now = time.monotonic()
    if now - _marked.get(key_id, float("-inf")) < services.API_KEY_LAST_USED_PRECISION.total_seconds():
        return
    if len(_marked) >= 10_000:
        _marked.clear()
    _marked[key_id] = now
    services.api_key_mark_used(key_id=key_id, now=timezone.now())


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Also where the API's rate limits are counted (gateway.ratelimit): per key before the key is looked up, and per
    client IP for missing, malformed or unknown keys."""

    def authenticate(self, request):
        try:
            raw = self._raw_key(request)
        except (exceptions.NotAuthenticated, exceptions.AuthenticationFailed):
            ratelimit.api_key_failure(request)
            raise
        ratelimit.api_key_check(request, key_digest=hash_key(raw), livemode=raw[3:7] == "live")
        key = selectors.api_key_active_by_raw(raw)
        if key is None:
            ratelimit.api_key_failure(request)
            raise exceptions.AuthenticationFailed(f"Invalid API Key provided: {redact(raw)}")
        _mark_used(key.id)
        caller = ApiCaller(
            merchant=key.merchant, livemode=key.livemode, key_id=key.id, kind=key.kind, permissions=key.permissions
        )
        return (None, caller)

    @staticmethod
    def _raw_key(request) -> str:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise exceptions.NotAuthenticated(NO_KEY)
        raw = _raw_key_from_header(header)
        if not raw:
            raise exceptions.NotAuthenticated(NO_KEY)
        if not KEY_RE.match(raw):
            raise exceptions.AuthenticationFailed("Invalid API Key provided: the key is malformed.")
        return raw

    def authenticate_header(self, request):
        return 'Bearer realm="gateway"'


class HasApiKey(permissions.BasePermission):
    """Every API view needs a key; views name the resource they touch (`api_resource`) for restricted keys.

    Publishable keys may only read what a view marks `publishable_read = True` (the checkout's retrieve)."""

    message = "This API key does not have the permissions needed for this request."

    def has_permission(self, request, view):
        caller = request.auth
        if not isinstance(caller, ApiCaller):
            return False
        read = request.method in permissions.SAFE_METHODS
        if caller.kind == ApiKey.Kind.PUBLISHABLE:
            if read and getattr(view, "publishable_read", False):
                return True
            self.message = "This API call cannot be made with a publishable API key. Please use a secret API key."
            return False
        resource = getattr(view, "api_resource", None)
        if resource is None:
            return caller.kind == ApiKey.Kind.SECRET
        if caller.can(resource, "read" if read else "write"):
            return True
        self.message = (
            f"The provided key '{caller.key_id}' does not have the required permissions for this endpoint: "
            f"it needs {'read' if read else 'write'} access to {resource}."
        )
        return False
