"""Production: refuses to start without its secrets; no defaults for anything secret."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import DATABASE_OPTIONS, env

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **DATABASE_OPTIONS}
GATEWAY_KEK = env("GATEWAY_KEK")
GATEWAY_SECRETS_KEK = env("GATEWAY_SECRETS_KEK")
GATEWAY_PUBLIC_URL = env("GATEWAY_PUBLIC_URL").rstrip("/")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
GATEWAY_WEBHOOK_ALLOW_LOOPBACK = env.bool("GATEWAY_WEBHOOK_ALLOW_LOOPBACK", default=False)
# A revoked key stops working within 2 s in every web process (merchants.selectors.api_key_active_by_raw).
GATEWAY_API_KEY_CACHE_SECONDS = env.float("GATEWAY_API_KEY_CACHE_SECONDS", default=2)

for _name, _value in {"SECRET_KEY": SECRET_KEY, "GATEWAY_KEK": GATEWAY_KEK,
                      "GATEWAY_SECRETS_KEK": GATEWAY_SECRETS_KEK}.items():
    if not _value or len(_value) < 32:
        raise ImproperlyConfigured(f"{_name} must be set to a real secret in production")
if GATEWAY_SECRETS_KEK == GATEWAY_KEK:
    raise ImproperlyConfigured(
        "GATEWAY_SECRETS_KEK must differ from GATEWAY_KEK: the web tier must not hold the seed's KEK"
    )

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
