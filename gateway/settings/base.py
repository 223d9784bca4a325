"""Settings shared by every environment. Secrets come only from the environment (django-environ)."""
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer may keep overrides in .env at the repository root; the environment always wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "gateway.apps.GatewayConfig",
    "gateway.apps.GatewayAdminConfig",  # django.contrib.admin behind TOTP (gateway/admin_site.py)
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
    "axes",
    "csp",
    "django_celery_beat",
    "audit",  # the audit trail: the lowest layer, every app records into it
    "merchants",
    "wallets",
    "payments",
    "settlements",
    "monitoring",
]

MIDDLEWARE = [
    "monitoring.middleware.ProbeMiddleware",  # first: /healthz, /readyz, /metrics (docs/operations.md)
    "gateway.api.middleware.RequestIdMiddleware",
    "gateway.metrics.RequestMetricsMiddleware",  # dropped below when GATEWAY_METRICS_REQUESTS is off
    "gateway.api.middleware.ApiNoStoreMiddleware",
    "gateway.api.middleware.InputGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "gateway.locale.CheckoutLocaleMiddleware",  # the checkout's language from Accept-Language; nothing else
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a django-axes lockout into its 429 page
]

# Per-request metrics (gateway_http_requests_total, gateway_http_request_seconds): a few microseconds a request;
# off (0) to measure what they cost (docs/benchmarks.md) or to leave request metrics to the proxy in front.
GATEWAY_METRICS_REQUESTS = env.bool("GATEWAY_METRICS_REQUESTS", default=True)
if not GATEWAY_METRICS_REQUESTS:
    MIDDLEWARE.remove("gateway.metrics.RequestMetricsMiddleware")

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
                "merchants.context_processors.portal",  # the portal's nav, switcher and test/live mode
            ],
        },
    },
]

# Server-side parameters and prepared statements: a statement run a few times on a connection is parsed and planned
# once, which takes about 40% off PostgreSQL's CPU per payment creation (docs/benchmarks.md). Needs direct
# connections or a pooler that keeps prepared statements (PgBouncer >= 1.21 with max_prepared_statements).
DATABASE_OPTIONS = {"server_side_binding": True, "prepare_threshold": env.int("DATABASE_PREPARE_THRESHOLD", default=5)}


def database_from_env(*, url_default: str | None = None, conn_max_age_default: int) -> dict:
    """DATABASES["default"] from DATABASE_URL. One connection per thread, kept CONN_MAX_AGE seconds (the web server
    runs a fixed number of threads, so the connections are bounded: docs/deploy.md); or, with
    DATABASE_POOL_MAX_SIZE > 0, a psycopg pool of at most that many connections per process (Django's native pool;
    prepared statements live on the pooled connections, so server_side_binding / prepare_threshold still apply)."""
    db = env.db("DATABASE_URL", default=url_default) if url_default else env.db("DATABASE_URL")
    db["OPTIONS"] = {**db.get("OPTIONS", {}), **DATABASE_OPTIONS}
    pool_max = env.int("DATABASE_POOL_MAX_SIZE", default=0)
    if pool_max > 0:
        db["CONN_MAX_AGE"] = 0  # the pool keeps the connections (Django refuses both)
        db["CONN_HEALTH_CHECKS"] = False  # a check would cost a round trip per request; the pool replaces bad ones
        db["OPTIONS"]["pool"] = {"min_size": min(pool_max, env.int("DATABASE_POOL_MIN_SIZE", default=1)),
                                 "max_size": pool_max, "max_idle": 60.0,
                                 "timeout": env.float("DATABASE_POOL_TIMEOUT", default=30.0)}
    else:
        db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=conn_max_age_default)
        db["CONN_HEALTH_CHECKS"] = True
    return db


DATABASES = {"default": database_from_env(url_default="postgres://root@127.0.0.1:5432/gateway",
                                          conn_max_age_default=60)}
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
# The customer's pages (/pay/, /claim/) follow the browser's Accept-Language (gateway.locale); everything else
# (API, portal, admin) stays English.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
# Sessions (portal and admin) end after this many minutes without a request: each request moves the expiry on.
SESSION_COOKIE_AGE = env.int("GATEWAY_SESSION_IDLE_MINUTES", default=60) * 60
SESSION_SAVE_EVERY_REQUEST = True
# Self sign-up in the portal (a merchant + its owner, after the emailed link is followed). Off unless the operator
# turns it on; local development turns it on (settings/local.py).
GATEWAY_PORTAL_SIGNUP = env.bool("GATEWAY_PORTAL_SIGNUP", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="gateway@localhost")
# Mail goes out by SMTP (Django's defaults: the MTA on localhost:25); `manage.py check_live` connects to it.
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
# The portal's home warns when a network the merchant accepts is more than this many blocks behind its head.
GATEWAY_PORTAL_LAG_BLOCKS = env.int("GATEWAY_PORTAL_LAG_BLOCKS", default=20)
# The home's figures of a period (volume, conversion, median time to pay) are cached this long (0: never).
GATEWAY_PORTAL_HOME_CACHE_SECONDS = env.int("GATEWAY_PORTAL_HOME_CACHE_SECONDS", default=60)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["merchants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["merchants.authentication.HasApiKey"],
    "DEFAULT_PARSER_CLASSES": ["gateway.api.parsers.StripeFormParser", "gateway.api.parsers.StripeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "gateway.api.errors.stripe_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [],
    # Proxies of ours in front that append to X-Forwarded-For: the client IP of the per-IP rate limits.
    "NUM_PROXIES": env.int("GATEWAY_NUM_PROXIES", default=0),
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
    # The merchants' daily summary emails (payments/notifications.py): yesterday's, once per merchant and day.
    "send-daily-summaries": {
        "task": "payments.tasks.send_daily_summaries",
        "schedule": timedelta(hours=1),
        "options": {"queue": "default", "expires": 3600},
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
    # Sweeps (settlements/sweeps.py, docs/money-out.md): settle what ended, record the batches the policies allow.
    # On `chain` (reads the chain, no key); the signer signs the batches and their 7702 authorizations.
    "run-sweeps": {
        "task": "settlements.tasks.run_sweeps",
        "schedule": timedelta(seconds=15),
        "options": {"queue": "chain", "expires": 15},
    },
    # The transaction manager (wallets/outgoing/, docs/money-out.md): signing on the `signer` queue (the only
    # workers with GATEWAY_KEK), broadcasting and following receipts on the `chain` queue (no key).
    "sign-outgoing-transactions": {
        "task": "wallets.tasks.sign_outgoing_transactions",
        "schedule": timedelta(seconds=5),
        "options": {"queue": "signer", "expires": 5},
    },
    "send-outgoing-transactions": {
        "task": "wallets.tasks.send_outgoing_transactions",
        "schedule": timedelta(seconds=3),
        "options": {"queue": "chain", "expires": 3},
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
    # Hot and cold (settlements/hotcold/, docs/money-out.md): cold transfers settled, gas posted, surplus to cold,
    # floor alerts; and the hot wallets and cold addresses reconciled with the ledger beside the deposit addresses.
    "hot-cold": {
        "task": "settlements.tasks.hot_cold",
        "schedule": timedelta(seconds=10),
        "options": {"queue": "chain", "expires": 10},
    },
    "reconcile-wallets": {
        "task": "settlements.tasks.reconcile_wallets",
        "schedule": timedelta(minutes=10),
        "options": {"queue": "chain", "expires": 600},
    },
    # Refunds (settlements/refunds/, docs/money-out.md): send the pending ones through the transaction manager,
    # settle the ones whose transaction ended.
    "advance-refunds": {
        "task": "settlements.tasks.advance_refunds",
        "schedule": timedelta(seconds=5),
        "options": {"queue": "default", "expires": 5},
    },
    # Payouts (settlements/payouts.py, docs/money-out.md): send pending ones, settle or return those whose
    # transaction is final; automatic payouts on the merchants' schedules.
    "advance-payouts": {
        "task": "settlements.tasks.advance_payouts",
        "schedule": timedelta(seconds=5),
        "options": {"queue": "default", "expires": 5},
    },
    "run-automatic-payouts": {
        "task": "settlements.tasks.run_automatic_payouts",
        "schedule": timedelta(minutes=10),
        "options": {"queue": "default", "expires": 600},
    },
}
# The chain watcher's tasks get workers of their own (`celery -A gateway worker -Q chain`): a slow RPC endpoint
# must not hold up webhooks or payment processing.
CELERY_TASK_ROUTES = {
    "settlements.tasks.run_sweeps": {"queue": "chain"},
    "wallets.tasks.scan_chains": {"queue": "chain"},
    "wallets.tasks.scan_network": {"queue": "chain"},
    "wallets.tasks.reconcile_balances": {"queue": "chain"},
    "settlements.tasks.reconcile_wallets": {"queue": "chain"},
    "settlements.tasks.hot_cold": {"queue": "chain"},  # reads the hot wallets' token balances (RPC)
    "payments.tasks.deliver_webhooks": {"queue": "webhooks"},
    "wallets.tasks.sign_outgoing_transactions": {"queue": "signer"},
    "wallets.tasks.send_outgoing_transactions": {"queue": "chain"},
}

# The gateway's own settings.
GATEWAY_PUBLIC_URL = env("GATEWAY_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
# Key-encryption key for the master seed: base64 of 32 bytes. Previous keys stay readable during rotation.
GATEWAY_KEK = env("GATEWAY_KEK", default="")
GATEWAY_KEK_PREVIOUS = env.list("GATEWAY_KEK_PREVIOUS", default=[])
# The signer backend (wallets/signer/): the local one derives keys from the seed; an HSM/KMS backend plugs in here.
GATEWAY_SIGNER_BACKEND = env("GATEWAY_SIGNER_BACKEND", default="wallets.signer.local.LocalSigner")
# Key-encryption key of the application secrets (webhook signing secrets, TOTP seeds; merchants.secrets), which
# the web tier and workers load instead of GATEWAY_KEK: base64 of 32 bytes, its own value; previous ones as above.
GATEWAY_SECRETS_KEK = env("GATEWAY_SECRETS_KEK", default="")
GATEWAY_SECRETS_KEK_PREVIOUS = env.list("GATEWAY_SECRETS_KEK_PREVIOUS", default=[])
GATEWAY_DEFAULT_EXPIRY_MINUTES = env.int("GATEWAY_DEFAULT_EXPIRY_MINUTES", default=30)
GATEWAY_MAX_AMOUNT_MINOR = env.int("GATEWAY_MAX_AMOUNT_MINOR", default=99_999_999)
# Gas limit of a refund's ERC-20 transfer from the hot wallet (USDT on Ethereum takes about 63k).
GATEWAY_REFUND_TOKEN_GAS_LIMIT = env.int("GATEWAY_REFUND_TOKEN_GAS_LIMIT", default=100_000)
# Payouts: a new payout address is usable only after this cooling-off period (emailed to the merchant when added);
# the gas limit of a payout's ERC-20 transfer.
GATEWAY_PAYOUT_ADDRESS_COOLING_OFF_SECONDS = env.int("GATEWAY_PAYOUT_ADDRESS_COOLING_OFF_SECONDS", default=24 * 3600)
GATEWAY_PAYOUT_GAS_LIMIT = env.int("GATEWAY_PAYOUT_GAS_LIMIT", default=100_000)
# The operator's limits on money out (payouts and refunds, every merchant; docs/money-out.md, "Approvals"), in minor
# units of GATEWAY_MONEY_OUT_LIMIT_CURRENCY: above the per-transaction one, or past the per-day total of the whole
# gateway (per UTC day and mode), a payout or refund waits for a staff approval. Empty: no limit.
GATEWAY_MONEY_OUT_LIMIT_CURRENCY = env("GATEWAY_MONEY_OUT_LIMIT_CURRENCY", default="usd")
GATEWAY_MONEY_OUT_LIMIT_PER_TRANSACTION_MINOR = env.int("GATEWAY_MONEY_OUT_LIMIT_PER_TRANSACTION_MINOR", default=None)
GATEWAY_MONEY_OUT_LIMIT_PER_DAY_MINOR = env.int("GATEWAY_MONEY_OUT_LIMIT_PER_DAY_MINOR", default=None)
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

# Logs (gateway/logs.py, docs/operations.md#logs): JSON lines on stderr from every process, each with its role and
# the request / task / event ids it was written for; `plain` for a terminal (make run). Never a secret: no request
# bodies or headers are logged, and the SQL logger (parameters) stays at WARNING whatever LOG_LEVEL says.
GATEWAY_LOG_FORMAT = env("GATEWAY_LOG_FORMAT", default="json")
if GATEWAY_LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured("GATEWAY_LOG_FORMAT must be json or plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "gateway.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "gateway.logs.JsonFormatter", "fmt": "%(levelname)s %(name)s %(message)s"},
        "plain": {"()": "logging.Formatter", "fmt": "%(asctime)s %(levelname)s %(role)s %(name)s %(request_id)s "
                                                    "%(task_id)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": GATEWAY_LOG_FORMAT,
                             "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
GATEWAY_NETWORK_CACHE_SECONDS = env.int("GATEWAY_NETWORK_CACHE_SECONDS", default=10)
# Only networks the chain watcher watches (an RPC URL in GATEWAY_RPC_<CODE>, or the devnet's) are offered to new
# payments and on the checkout (wallets.networks.active_networks). The test suite turns it off for its seeded test
# networks that no node backs; the tests of the rule turn it on.
GATEWAY_NETWORKS_REQUIRE_RPC = env.bool("GATEWAY_NETWORKS_REQUIRE_RPC", default=True)
# API keys found by merchants.selectors.api_key_active_by_raw are remembered per process for this many seconds
# (0: read on every request). Revocation takes effect within this time; production sets 2 s.
GATEWAY_API_KEY_CACHE_SECONDS = env.float("GATEWAY_API_KEY_CACHE_SECONDS", default=0)

# Logins (portal and admin): password + TOTP code in one form (gateway/otp.py), throttled by django-axes.
# The TOTP device model (a django-otp Device); every device lookup goes through gateway.otp.
GATEWAY_TOTP_DEVICE_MODEL = env("GATEWAY_TOTP_DEVICE_MODEL", default="merchants.EncryptedTotpDevice")  # seed encrypted at rest
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Crypto payment gateway")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: a locked-out client is refused before any password hashing
    "django.contrib.auth.backends.ModelBackend",
]
# Failed logins are counted per (user name, client IP): the AXES_FAILURE_LIMIT-th failure within the cool-off locks
# that pair out for AXES_COOLOFF_TIME. Keyed on the pair, so someone guessing from one address cannot lock the real
# user out from another one; guessing one account from many addresses meets the TOTP code, which django-otp
# throttles per device whatever the address. A wrong code counts like a wrong password.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The client address read as the rate limits read it (X-Forwarded-For past GATEWAY_NUM_PROXIES proxies), not the
# proxy's REMOTE_ADDR.
AXES_CLIENT_IP_CALLABLE = "gateway.ratelimit.client_address"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # tries while locked out do not prolong the lockout
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "login_locked_out.html"
AXES_ENABLE_ADMIN = True  # Axes > Access attempts: staff can see and delete (unlock) lockouts
# Rate limits (gateway/ratelimit.py): `N/<window>` (100/s, 60/10s, 20/m) or `off`. Per API key, in Stripe's numbers:
# read and write operations are counted apart; the test helpers count on top of the key's own limit. Per client IP:
# requests with a missing, malformed or unknown key (an IP over it gets 429 before its key is looked up), and the
# hosted checkout page with its status poll (one customer polls every 2 s).
GATEWAY_RATE_LIMIT_REDIS_URL = env("GATEWAY_RATE_LIMIT_REDIS_URL", default=REDIS_URL)
GATEWAY_RATE_LIMIT_LIVE_READ = env("GATEWAY_RATE_LIMIT_LIVE_READ", default="100/s")
GATEWAY_RATE_LIMIT_LIVE_WRITE = env("GATEWAY_RATE_LIMIT_LIVE_WRITE", default="100/s")
GATEWAY_RATE_LIMIT_TEST_READ = env("GATEWAY_RATE_LIMIT_TEST_READ", default="25/s")
GATEWAY_RATE_LIMIT_TEST_WRITE = env("GATEWAY_RATE_LIMIT_TEST_WRITE", default="25/s")
GATEWAY_RATE_LIMIT_TEST_HELPERS = env("GATEWAY_RATE_LIMIT_TEST_HELPERS", default="5/s")
GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP = env("GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP", default="20/m")
GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP = env("GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP", default="60/10s")
# The portal's forms that send an email (sign-up, password reset), per client IP.
GATEWAY_RATE_LIMIT_PORTAL_MAIL_PER_IP = env("GATEWAY_RATE_LIMIT_PORTAL_MAIL_PER_IP", default="5/m")
# Failed logins (portal and admin) per client IP, whatever the account: against password spraying, which the lockout
# per (account, IP) above never sees. High enough for an office behind one address.
GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_IP = env("GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_IP", default="30/15m")

# The merchant's "webhook endpoint failing" email (portal settings, Notifications): after this many failed attempts in
# a row, once per endpoint and incident. The endpoint is disabled (and that emailed) after 3 days of failures.
GATEWAY_WEBHOOK_FAILING_EMAIL_AFTER = env.int("GATEWAY_WEBHOOK_FAILING_EMAIL_AFTER", default=10)

# Content-Security-Policy (django-csp) on every page but the API's JSON and the API docs (drf-spectacular's pages
# carry inline scripts); templates put `nonce="{{ request.csp_nonce }}"` on their inline <style> and <script>. The
# checkout sets a stricter policy of its own (payments/views.py), which the middleware leaves as it is.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/v1/", "/api/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Input rules (docs/architecture.md, "Input rules"): the largest /v1 request body read, and the deepest JSON nesting
# parsed; larger or deeper bodies are refused with a 4xx before they are parsed.
GATEWAY_API_MAX_BODY_BYTES = env.int("GATEWAY_API_MAX_BODY_BYTES", default=1024 * 1024)
GATEWAY_API_MAX_JSON_DEPTH = env.int("GATEWAY_API_MAX_JSON_DEPTH", default=32)

# Health and metrics (monitoring/, docs/operations.md "Health and metrics"). /readyz answers within about this long
# whatever hangs, and fails when a chain's scanner is further behind its node than this many seconds of blocks, or
# more than this many webhook deliveries are due (with the events not fanned out yet).
GATEWAY_READYZ_TIMEOUT_SECONDS = env.float("GATEWAY_READYZ_TIMEOUT_SECONDS", default=1.5)
GATEWAY_READYZ_MAX_SCANNER_LAG_SECONDS = env.float("GATEWAY_READYZ_MAX_SCANNER_LAG_SECONDS", default=120.0)
GATEWAY_READYZ_MAX_WEBHOOK_BACKLOG = env.int("GATEWAY_READYZ_MAX_WEBHOOK_BACKLOG", default=1000)
# /metrics answers a client address in this list (addresses or networks), or a request carrying
# `Authorization: Bearer <GATEWAY_METRICS_TOKEN>` when that is set; everyone else gets 403.
GATEWAY_METRICS_TOKEN = env("GATEWAY_METRICS_TOKEN", default="")
GATEWAY_METRICS_ALLOW_IPS = env.list("GATEWAY_METRICS_ALLOW_IPS", default=["127.0.0.1", "::1"])
