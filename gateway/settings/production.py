"""Production: refuses to start without its secrets; no defaults for anything secret."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import database_from_env, env

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
DATABASES = {"default": database_from_env(conn_max_age_default=600)}
# Only the signer's processes (Celery queue `signer`, `manage.py wallet`) need the KEK: the web tier and the other
# workers run without it (docs/money-out.md). When it is set it must be a real one.
GATEWAY_KEK = env("GATEWAY_KEK", default="")
GATEWAY_SECRETS_KEK = env("GATEWAY_SECRETS_KEK")
GATEWAY_PUBLIC_URL = env("GATEWAY_PUBLIC_URL").rstrip("/")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
GATEWAY_WEBHOOK_ALLOW_LOOPBACK = env.bool("GATEWAY_WEBHOOK_ALLOW_LOOPBACK", default=False)
# A revoked key stops working within 2 s in every web process (merchants.selectors.api_key_active_by_raw).
GATEWAY_API_KEY_CACHE_SECONDS = env.float("GATEWAY_API_KEY_CACHE_SECONDS", default=2)

for _name, _value in {"SECRET_KEY": SECRET_KEY, "GATEWAY_KEK": GATEWAY_KEK,
                      "GATEWAY_SECRETS_KEK": GATEWAY_SECRETS_KEK}.items():
    if (not _value and _name != "GATEWAY_KEK") or (_value and len(_value) < 32):
        raise ImproperlyConfigured(f"{_name} must be set to a real secret in production")
if GATEWAY_SECRETS_KEK == GATEWAY_KEK:
    raise ImproperlyConfigured(
        "GATEWAY_SECRETS_KEK must differ from GATEWAY_KEK: the web tier must not hold the seed's KEK"
    )

# HTTPS only (`manage.py check --deploy` is clean; tests/gateway/test_settings.py runs it). The gateway is meant to sit
# behind a TLS-terminating proxy that sets X-Forwarded-Proto; see README "Environment (production)".
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# `Header-Name=value` of the header by which the proxy says the request came over HTTPS (default
# `X-Forwarded-Proto=https`); empty when the gateway terminates TLS itself. Only set it when every request passes
# through a proxy that overwrites that header: otherwise any client can claim HTTPS.
_proxy_ssl_header = env("SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto=https").strip()
if _proxy_ssl_header:
    _name, _, _value = _proxy_ssl_header.partition("=")
    if not _name.strip() or not _value.strip():
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must read Header-Name=value, e.g. X-Forwarded-Proto=https")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip())
else:
    SECURE_PROXY_SSL_HEADER = None
# The per-IP rate limits read the client's address from X-Forwarded-For, past this many proxies of ours (0: the
# socket's peer address). Keep it equal to the proxies in front, or clients can pick their own address.
_num_proxies = env.int("GATEWAY_NUM_PROXIES", default=1 if _proxy_ssl_header else 0)
REST_FRAMEWORK = {**REST_FRAMEWORK, "NUM_PROXIES": _num_proxies}  # noqa: F405
# `check --deploy` is about the deployment: drf-spectacular's own deploy check (generating the OpenAPI schema and
# reporting fields it types as strings) belongs to the schema's tests, not to every start-up check.
SPECTACULAR_SETTINGS = {**SPECTACULAR_SETTINGS, "ENABLE_DJANGO_DEPLOY_CHECK": False}  # noqa: F405
