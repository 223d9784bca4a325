"""A developer's machine: DEBUG on, loopback webhooks allowed, a local key file if no KEK is set."""
from .base import *  # noqa: F401,F403
from .base import BASE_DIR, env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "local-development-only-not-a-secret"  # noqa: F405
GATEWAY_WEBHOOK_ALLOW_LOOPBACK = env.bool("GATEWAY_WEBHOOK_ALLOW_LOOPBACK", default=True)
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# make run's terminal: one readable line per record (role, request id, task id); GATEWAY_LOG_FORMAT=json for JSON.
GATEWAY_LOG_FORMAT = env("GATEWAY_LOG_FORMAT", default="plain")
LOGGING["handlers"]["console"]["formatter"] = GATEWAY_LOG_FORMAT  # noqa: F405
GATEWAY_PORTAL_SIGNUP = env.bool("GATEWAY_PORTAL_SIGNUP", default=True)  # the emails print on the console

if not GATEWAY_KEK:  # noqa: F405
    # scripts/setup.sh writes this file once; it never leaves the machine.
    _kek_file = BASE_DIR / ".local" / "kek"
    if _kek_file.exists():
        GATEWAY_KEK = _kek_file.read_text().strip()
if not GATEWAY_SECRETS_KEK:  # noqa: F405
    _secrets_kek_file = BASE_DIR / ".local" / "secrets_kek"  # also written by scripts/setup.sh
    if _secrets_kek_file.exists():
        GATEWAY_SECRETS_KEK = _secrets_kek_file.read_text().strip()
