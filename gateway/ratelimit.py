"""Rate limits kept in Redis: one round trip per check, shared by every web process.

A limit is a setting `GATEWAY_RATE_LIMIT_*` written `N/<window>`: `100/s`, `60/10s`, `20/m`, `1000/h`; `off` (or
empty) turns it off. Each counter is a fixed window that starts with its first request: INCR, EXPIRE ... NX and
PTTL go to Redis in one pipeline (Redis >= 7.0), so a check costs one round trip and the answer carries the time
left in the window (the `Retry-After` of a 429). Nothing is read then written, so concurrent requests never lose a
count. If Redis cannot be reached the request goes through (a warning is logged): limits protect the gateway, they
must not take the API down with them.

What is counted (see docs/architecture.md, "Rate limits"):
- per API key, before the key is looked up: `GATEWAY_RATE_LIMIT_{LIVE,TEST}_{READ,WRITE}` (Stripe's 100 read and
  100 write operations per second in live mode, 25 and 25 in test mode), counted by the key's SHA-256;
- per client IP, the requests whose key is missing, malformed or unknown: `GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP`; an IP
  over it gets 429 before its key is looked up, good keys included, until its window ends;
- per API key, the test helpers (`GATEWAY_RATE_LIMIT_TEST_HELPERS`), a DRF throttle on their views;
- per client IP, the hosted checkout page and its status poll (`GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP`);
- per client IP, failed logins to the portal and the admin, whatever the account
  (`GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_IP`): against password spraying, one guess for each of many accounts, which
  django-axes' lockout per (account, IP) never sees. An IP over it gets 429 on its login POSTs until its window ends;
  other addresses log in as before.

The client IP is DRF's (`REST_FRAMEWORK["NUM_PROXIES"]`, set from `GATEWAY_NUM_PROXIES`: how many proxies of
ours append to X-Forwarded-For); an IPv6 client is counted by its /64, which one host usually holds whole.
"""
import ipaddress
import logging
import re
from dataclasses import dataclass
from functools import lru_cache, wraps

import redis
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from gateway.api.errors import RATE_LIMIT_MESSAGE as MESSAGE, error_body

logger = logging.getLogger(__name__)

PREFIX = "gw:rl:"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$", re.I)


@dataclass(frozen=True)
class Rate:
    limit: int
    seconds: int


@lru_cache(maxsize=64)
def parse_rate(text: str | None) -> Rate | None:
    """`"100/s"` -> Rate(100, 1); `"60/10s"` -> Rate(60, 10); `"off"`, `""`, None -> None (no limit)."""
    if text is None or str(text).strip().lower() in ("", "off", "none"):
        return None
    match = _RATE_RE.match(str(text))
    if not match:
        raise ValueError(f"Invalid rate limit {text!r}: write it N/<window>, e.g. 100/s, 60/10s, 20/m.")
    count, multiple, unit = match.groups()
    return Rate(limit=int(count), seconds=int(multiple or 1) * _UNITS[unit.lower()])


def rate(setting: str) -> Rate | None:
    return parse_rate(getattr(settings, setting))


class RateLimited(exceptions.Throttled):
    """429 in Stripe's shape with `Retry-After` (gateway.api.errors.stripe_exception_handler)."""

    def __init__(self, wait: int):
        super().__init__(wait=wait, detail=MESSAGE)


# --- Counting ----------------------------------------------------------------------------------------------------

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(
            settings.GATEWAY_RATE_LIMIT_REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5,
            health_check_interval=30,
        )
    return _client


def _seconds(pttl_ms: int, rate: Rate) -> int:
    """The Retry-After: whole seconds left in the window, at least 1."""
    if pttl_ms is None or pttl_ms < 0:
        return rate.seconds
    return max(1, -(-pttl_ms // 1000))


def count(hits: list[tuple[str, Rate]], peeks: list[tuple[str, Rate]] = ()) -> int | None:
    """Count one request in each `hits` counter and read each `peeks` counter without counting, in one round trip.

    Returns the seconds to wait if a hit counter went over its limit or a peeked one is at or over it, else None."""
    if not hits and not peeks:
        return None
    pipe = _redis().pipeline(transaction=False)
    for key, r in hits:
        pipe.incr(PREFIX + key)
        pipe.expire(PREFIX + key, r.seconds, nx=True)
        pipe.pttl(PREFIX + key)
    for key, _ in peeks:
        pipe.get(PREFIX + key)
        pipe.pttl(PREFIX + key)
    try:
        replies = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("rate limits not checked: Redis unavailable (%s)", exc)
        return None
    wait = None
    for index, (_, r) in enumerate(hits):
        number, _, pttl = replies[3 * index: 3 * index + 3]
        if number > r.limit:
            wait = max(wait or 0, _seconds(pttl, r))
    base = 3 * len(hits)
    for index, (_, r) in enumerate(peeks):
        number, pttl = replies[base + 2 * index: base + 2 * index + 2]
        if number is not None and int(number) >= r.limit:
            wait = max(wait or 0, _seconds(pttl, r))
    return wait


def client_address(request) -> str | None:
    """The client's address as DRF's throttles see it: past GATEWAY_NUM_PROXIES proxies of ours in X-Forwarded-For,
    else the socket's peer. Also django-axes' (AXES_CLIENT_IP_CALLABLE), so that behind the proxy a login lockout
    holds one client's address, not the proxy's (which would lock the account out for everyone)."""
    ident = BaseThrottle().get_ident(request)
    try:
        return str(ipaddress.ip_address(ident))
    except ValueError:
        return None  # a WSGI server always sets REMOTE_ADDR; tools may not


def client_ip(request) -> str:
    """The client's address as DRF's throttles see it (NUM_PROXIES), an IPv6 one reduced to its /64."""
    ident = client_address(request)
    if ident is None:
        return (BaseThrottle().get_ident(request) or "unknown")[:64]
    address = ipaddress.ip_address(ident)
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address) + "/64"


# --- API keys (called by the API's authentication, before the key is looked up) --------------------------------

def _bad_keys_counter(request) -> tuple[str, Rate] | None:
    r = rate("GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP")
    return (f"badkey:{client_ip(request)}", r) if r else None


def api_key_check(request, *, key_digest: str, livemode: bool) -> None:
    """Count the request against its key's limit (read or write, live or test) and refuse it if the key is over, or
    its IP has sent too many bad keys: one round trip, before any database work. Raises RateLimited."""
    access = "READ" if request.method in ("GET", "HEAD", "OPTIONS") else "WRITE"
    r = rate(f"GATEWAY_RATE_LIMIT_{'LIVE' if livemode else 'TEST'}_{access}")
    bad = _bad_keys_counter(request)
    wait = count([(f"key:{access[0]}:{key_digest[:32]}", r)] if r else [], [bad] if bad else [])
    if wait is not None:
        raise RateLimited(wait)


def api_key_failure(request) -> None:
    """Count a missing, malformed or unknown key against the client's IP; raises RateLimited once it is over."""
    bad = _bad_keys_counter(request)
    wait = count([bad]) if bad else None
    if wait is not None:
        raise RateLimited(wait)


class HelperRateThrottle(BaseThrottle):
    """DRF throttle for the test helpers (`throttle_classes`): GATEWAY_RATE_LIMIT_TEST_HELPERS per API key, on top of
    the key's own limit."""

    def allow_request(self, request, view) -> bool:
        r = rate("GATEWAY_RATE_LIMIT_TEST_HELPERS")
        key_id = getattr(request.auth, "key_id", None)
        if r is None or key_id is None:
            return True
        self._wait = count([(f"helpers:{key_id}", r)])
        return self._wait is None

    def wait(self):
        return getattr(self, "_wait", None)


# --- Pages without a key (the hosted checkout) ---------------------------------------------------------------------

def limit_per_ip(setting: str, scope: str, *, json: bool):
    """Decorator for a Django view: GATEWAY setting `setting` per client IP, counted before the view runs; a 429 in
    Stripe's shape (`json`) or as plain text, with Retry-After, never cached."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            r = rate(setting)
            wait = count([(f"{scope}:{client_ip(request)}", r)]) if r else None
            if wait is None:
                return view(request, *args, **kwargs)
            if json:
                response = JsonResponse(error_body(message=MESSAGE, code="rate_limit"), status=429)
            else:
                response = HttpResponse(f"Too many requests. Please try again in {wait} seconds.\n",
                                        content_type="text/plain; charset=utf-8", status=429)
            response["Retry-After"] = str(wait)
            response["Cache-Control"] = "no-store"
            return response

        return wrapped

    return decorator


# --- Logins: failures per client IP, whatever the account (password spraying) ------------------------------------

def _login_failures_counter(request) -> tuple[str, Rate] | None:
    r = rate("GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_IP")
    return (f"loginfail:{client_ip(request)}", r) if r else None


def login_failure(request) -> None:
    """Count one failed login against the client's IP (connected to Django's `user_login_failed` signal)."""
    counter = _login_failures_counter(request)
    if counter is not None:
        count([counter])


def login_limited(view):
    """Decorator for a login view: a POST from an IP that has failed GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_IP logins
    in the window gets 429 with Retry-After before any password is hashed; GETs and other IPs go through."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        counter = _login_failures_counter(request) if request.method == "POST" else None
        wait = count([], [counter]) if counter is not None else None
        if wait is None:
            return view(request, *args, **kwargs)
        minutes = -(-wait // 60)
        response = HttpResponse(
            f"Too many failed sign-ins from your network. Please try again in {minutes} minute"
            f"{'s' if minutes != 1 else ''}.\n", content_type="text/plain; charset=utf-8", status=429)
        response["Retry-After"] = str(wait)
        response["Cache-Control"] = "no-store"
        return response

    return wrapped
