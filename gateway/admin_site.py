"""The Django admin behind a second factor: user name + password + a code from the staff member's confirmed TOTP
device (gateway.otp). A staff user without a confirmed device cannot get in; an operator enrols the first one with
`manage.py staff_totp_enrol --username U`. Installed as the default admin site by gateway.apps.GatewayAdminConfig,
so every app's `@admin.register` lands here."""
from django.contrib import admin
from django_otp.admin import OTPAdminSite

from .otp import TotpAdminAuthenticationForm


class GatewayAdminSite(OTPAdminSite):
    login_form = TotpAdminAuthenticationForm
    login_template = "admin/login_totp.html"

    def __init__(self, name="admin"):
        super().__init__(name)


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
