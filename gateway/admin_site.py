"""The Django admin behind a second factor: user name + password + a code from the staff member's confirmed TOTP
device (gateway.otp). A staff user without a confirmed device cannot get in; an operator enrols the first one with
`manage.py staff_totp_enrol --username U`. Installed as the default admin site by gateway.apps.GatewayAdminConfig,
so every app's `@admin.register` lands here.

Every model admin registered here records its changes in the audit trail (audit.admin_hooks.AuditedAdminMixin is put
in front of its class at registration, Django's own User and Group admins included)."""
from django.contrib import admin
from django_otp.admin import OTPAdminSite

from audit.admin_hooks import AuditedAdminMixin

from .otp import TotpAdminAuthenticationForm


class GatewayAdminSite(OTPAdminSite):
    login_form = TotpAdminAuthenticationForm
    login_template = "admin/login_totp.html"

    def __init__(self, name="admin"):
        super().__init__(name)

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditedAdminMixin):
            admin_class = type(admin_class.__name__, (AuditedAdminMixin, admin_class),
                               {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__})
        super().register(model_or_iterable, admin_class, **options)


class ReadOnlyMixin:
    """Shown, never added, edited or deleted by hand (for model admins and inlines alike)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class FactAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Append-only facts written by services only: shown, never added, edited or deleted by hand (their own actions,
    e.g. "Resend" or "Mark resolved", still run through their service)."""


class FactInline(ReadOnlyMixin, admin.TabularInline):
    """The rows of a fact shown inside its parent's page, read-only."""

    extra = 0
