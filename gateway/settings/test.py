"""The test suite: the same PostgreSQL, Redis and anvil as production, but fast password hashing."""
import base64
import os
from urllib.parse import urlsplit, urlunsplit

# `make test` runs the suite in pytest-xdist workers (gw0, gw1, ...): each gets a Redis database of its own (this
# run's database minus the worker's number: 15, 14, ... by default), so one worker's Celery worker processes never
# take another's tasks nor its rate-limit counters, and pytest-django gives each its own test database (NAME_gw0,
# ...). Written back to the environment, once, so the gateway processes a test starts inherit the same database.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER.startswith("gw") and not os.environ.get("GATEWAY_TEST_REDIS_OF_WORKER"):
    _url = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    _db = (int(_url.path.strip("/") or 0) - int(_XDIST_WORKER[2:])) % 16
    os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{_db}"))
    os.environ["GATEWAY_TEST_REDIS_OF_WORKER"] = _XDIST_WORKER

from .base import *  # noqa: E402,F401,F403
from .base import env  # noqa: E402

SECRET_KEY = "test-only-secret-key"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
GATEWAY_KEK = base64.b64encode(b"k" * 32).decode()
GATEWAY_KEK_PREVIOUS = []
GATEWAY_SECRETS_KEK = base64.b64encode(b"s" * 32).decode()
GATEWAY_SECRETS_KEK_PREVIOUS = []
GATEWAY_WEBHOOK_ALLOW_LOOPBACK = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
GATEWAY_PORTAL_SIGNUP = True
GATEWAY_PORTAL_HOME_CACHE_SECONDS = 0  # tests of the cache turn it on
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("REDIS_URL", default="redis://127.0.0.1:6379/15"),
        "KEY_PREFIX": "gwtest",
    }
}
# The broker is this run's Redis too (REDIS_URL, else db 15): never db 0, where `make run`'s worker listens, and the
# same Redis the tests' real worker processes are given (a run without REDIS_URL sent tasks to db 0 while its worker
# listened on db 15).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=CACHES["default"]["LOCATION"])
LOGGING["root"]["level"] = env("LOG_LEVEL", default="WARNING")  # noqa: F405
GATEWAY_NETWORK_CACHE_SECONDS = 0
GATEWAY_NETWORKS_REQUIRE_RPC = False  # the seeded test networks have no node; tests of the rule turn it on
# Separate test databases for runs that share a machine (set TEST_DB_NAME per run).
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DB_NAME", default="test_gateway")}  # noqa: F405
# Rate limits high enough for a suite that makes many calls from one IP with one key; tests of the limits lower them.
GATEWAY_RATE_LIMIT_REDIS_URL = CACHES["default"]["LOCATION"]
GATEWAY_RATE_LIMIT_LIVE_READ = GATEWAY_RATE_LIMIT_LIVE_WRITE = "100000/s"
GATEWAY_RATE_LIMIT_TEST_READ = GATEWAY_RATE_LIMIT_TEST_WRITE = GATEWAY_RATE_LIMIT_TEST_HELPERS = "100000/s"
GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP = GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP = "100000/s"
GATEWAY_RATE_LIMIT_PORTAL_MAIL_PER_IP = GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_IP = "100000/s"
