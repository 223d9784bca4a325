"""Settings shared by every environment. Secrets come only from the environment (django-environ)."""
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer may keep overrides in .env at the repository root; the environment always wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_celery_beat",
    "merchants",
    "wallets",
    "payments",
    "settlements",
]

MIDDLEWARE = [
    "gateway.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway.urls"
WSGI_APPLICATION = "gateway.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://root@127.0.0.1:5432/gateway"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Server-side parameters and prepared statements: a statement run a few times on a connection is parsed and planned
# once, which takes about 40% off PostgreSQL's CPU per payment creation (docs/benchmarks.md). Needs direct
# connections or a pooler that keeps prepared statements (PgBouncer >= 1.21 with max_prepared_statements).
DATABASE_OPTIONS = {"server_side_binding": True, "prepare_threshold": env.int("DATABASE_PREPARE_THRESHOLD", default=5)}
DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **DATABASE_OPTIONS}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "gw",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["merchants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["merchants.authentication.HasApiKey"],
    "DEFAULT_PARSER_CLASSES": ["gateway.api.parsers.StripeFormParser", "gateway.api.parsers.StripeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "gateway.api.errors.stripe_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Crypto payment gateway API",
    "DESCRIPTION": "Stripe-compatible PaymentIntents for stablecoin deposits on EVM chains.",
    "VERSION": "2026-11-01",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
    "SECURITY": [{"bearerAuth": []}],
}

# Celery: Redis broker, beat schedule kept in the database by django-celery-beat.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BEAT_SCHEDULE = {
    "expire-payment-intents": {
        "task": "payments.tasks.expire_payment_intents",
        "schedule": timedelta(seconds=15),
        "options": {"queue": "default", "expires": 15},
    },
    "process-address-activity": {
        "task": "payments.tasks.process_address_activity",
        "schedule": timedelta(seconds=5),
        "options": {"queue": "default", "expires": 5},
    },
    "purge-idempotency-records": {
        "task": "merchants.tasks.purge_idempotency_records",
        "schedule": timedelta(hours=1),
        "options": {"queue": "default", "expires": 3600},
    },
    # The chain scanner's fallback when no `manage.py watch` runs (and its safety net when one does): each network
    # is stepped until caught up or a few seconds are spent; the per-network advisory lock makes overlaps harmless.
    "scan-chains": {
        "task": "wallets.tasks.scan_chains",
        "schedule": timedelta(seconds=2),
        "options": {"queue": "chain", "expires": 2},
    },
    # Reconciliation: on-chain balances of the deposit addresses against the recorded transfers
    # (wallets/chain/reconcile.py); differences become BalanceDiscrepancy rows for staff.
    "reconcile-balances": {
        "task": "wallets.tasks.reconcile_balances",
        "schedule": timedelta(minutes=10),
        "options": {"queue": "chain", "expires": 600},
    },
    # Webhook delivery's fallback when no `manage.py deliver_webhooks` runs (and its safety net when one does):
    # fan out new events and send what is due for a few seconds; SKIP LOCKED and leases make overlaps harmless.
    "deliver-webhooks": {
        "task": "payments.tasks.deliver_webhooks",
        "schedule": timedelta(seconds=1),
        "options": {"queue": "webhooks", "expires": 1},
    },
    # The ledger (settlements, docs/ledger.md): Charge facts queued by payments (also sent after each commit), and
    # credits whose holding period is over.
    "post-charge-ledger-facts": {
        "task": "settlements.tasks.post_charge_facts",
        "schedule": timedelta(seconds=3),
        "options": {"queue": "default", "expires": 3},
    },
    "release-pending-credits": {
        "task": "settlements.tasks.release_pending",
        "schedule": timedelta(seconds=30),
        "options": {"queue": "default", "expires": 30},
    },
}
# The chain watcher's tasks get workers of their own (`celery -A gateway worker -Q chain`): a slow RPC endpoint
# must not hold up webhooks or payment processing.
CELERY_TASK_ROUTES = {
    "wallets.tasks.scan_chains": {"queue": "chain"},
    "wallets.tasks.scan_network": {"queue": "chain"},
    "wallets.tasks.reconcile_balances": {"queue": "chain"},
    "payments.tasks.deliver_webhooks": {"queue": "webhooks"},
}

# The gateway's own settings.
GATEWAY_PUBLIC_URL = env("GATEWAY_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
# Key-encryption key for the master seed: base64 of 32 bytes. Previous keys stay readable during rotation.
GATEWAY_KEK = env("GATEWAY_KEK", default="")
GATEWAY_KEK_PREVIOUS = env.list("GATEWAY_KEK_PREVIOUS", default=[])
GATEWAY_DEFAULT_EXPIRY_MINUTES = env.int("GATEWAY_DEFAULT_EXPIRY_MINUTES", default=30)
GATEWAY_MAX_AMOUNT_MINOR = env.int("GATEWAY_MAX_AMOUNT_MINOR", default=99_999_999)
GATEWAY_IDEMPOTENCY_TTL = timedelta(hours=24)
GATEWAY_WEBHOOK_ALLOW_LOOPBACK = env.bool("GATEWAY_WEBHOOK_ALLOW_LOOPBACK", default=False)
# Webhook delivery (payments.webhooks, docs/webhooks.md): a POST that has no answer after this long is a failure.
GATEWAY_WEBHOOK_TIMEOUT_SECONDS = env.float("GATEWAY_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# A claimed delivery is hidden from other senders for the timeout plus this margin; a sender killed mid-request
# gets its deliveries sent again by another one after that.
GATEWAY_WEBHOOK_LEASE_MARGIN_SECONDS = env.float("GATEWAY_WEBHOOK_LEASE_MARGIN_SECONDS", default=30.0)
# Requests in flight per endpoint in one sender (a slow endpoint uses up its own budget, never the others'),
# and in all.
GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY = env.int("GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY", default=32)
GATEWAY_WEBHOOK_MAX_IN_FLIGHT = env.int("GATEWAY_WEBHOOK_MAX_IN_FLIGHT", default=1000)
# The failing endpoints (the slow lane) together hold at most this share of those requests in flight, so endpoints
# that hang until the timeout never take the capacity of the healthy ones.
GATEWAY_WEBHOOK_SLOW_LANE_SHARE = env.float("GATEWAY_WEBHOOK_SLOW_LANE_SHARE", default=0.25)
# RPC endpoints of the local devnet (anvil started by `manage.py devchain`).
GATEWAY_DEVCHAIN_RPC_URL = env("GATEWAY_DEVCHAIN_RPC_URL", default="http://127.0.0.1:8545")
# Reconciliation reads the balances of every address with a transfer on the network, plus those issued in the last
# this many days (where native coin sent by an internal transaction may sit without any Transfer row).
GATEWAY_RECONCILE_RECENT_DAYS = env.int("GATEWAY_RECONCILE_RECENT_DAYS", default=7)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
GATEWAY_NETWORK_CACHE_SECONDS = env.int("GATEWAY_NETWORK_CACHE_SECONDS", default=10)
# API keys found by merchants.selectors.api_key_active_by_raw are remembered per process for this many seconds
# (0: read on every request). Revocation takes effect within this time; production sets 2 s.
GATEWAY_API_KEY_CACHE_SECONDS = env.float("GATEWAY_API_KEY_CACHE_SECONDS", default=0)
