"""Production: refuses to start without its secrets; no defaults for anything secret."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import env

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
GATEWAY_KEK = env("GATEWAY_KEK")
GATEWAY_PUBLIC_URL = env("GATEWAY_PUBLIC_URL").rstrip("/")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
GATEWAY_WEBHOOK_ALLOW_LOOPBACK = env.bool("GATEWAY_WEBHOOK_ALLOW_LOOPBACK", default=False)

for _name, _value in {"SECRET_KEY": SECRET_KEY, "GATEWAY_KEK": GATEWAY_KEK}.items():
    if not _value or len(_value) < 32:
        raise ImproperlyConfigured(f"{_name} must be set to a real secret in production")

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
