import sys

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig

from . import INTERPRETER_RECURSION_LIMIT


class GatewayConfig(AppConfig):
    """Process-wide set-up that every entry point passes (web workers, Celery, manage.py, tests)."""

    name = "gateway"
    verbose_name = "Gateway"

    def ready(self):
        recursion_limit_restore()
        from django.contrib.auth.signals import user_login_failed

        user_login_failed.connect(_login_failed, dispatch_uid="gateway.ratelimit.login_failure")


def _login_failed(sender, credentials=None, request=None, **kwargs) -> None:
    """Every failed login with a request (portal, admin) counts against its client IP (gateway.ratelimit)."""
    if request is not None:
        from gateway import ratelimit

        ratelimit.login_failure(request)


def recursion_limit_restore() -> None:
    """Import the library that raises the recursion limit (py_ecc, through eth_account) now, then put the
    interpreter's limit back: at 100,000 a nested JSON body overflows the C stack (a crash, not a RecursionError)."""
    import py_ecc  # noqa: F401

    sys.setrecursionlimit(INTERPRETER_RECURSION_LIMIT)


class GatewayAdminConfig(AdminConfig):
    """django.contrib.admin with gateway.admin_site.GatewayAdminSite (TOTP required) as `admin.site`."""

    default_site = "gateway.admin_site.GatewayAdminSite"
