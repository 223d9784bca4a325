from django.apps import apps
from django import forms
from django.contrib import admin, messages
from django.db import models
from django.template.response import TemplateResponse

from gateway.admin_site import staff_permission
from gateway.errors import DomainError
from gateway.forms import AsciiIntegerField

from gateway.otp import totp_device_model

from . import services
from .models import ApiKey, IdempotencyRecord, Membership, Merchant, WebhookEndpoint


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("id", "kind", "livemode", "name", "redacted", "created", "expires_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued by `manage.py create_api_key` or the portal, and shown once


class MembershipInline(admin.TabularInline):
    """The team, read-only: its changes go through the portal's services (never without an owner)."""

    model = Membership
    extra = 0
    can_delete = False
    fields = ("user", "role", "created")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class FreezeForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Why the accounts stop taking payments (kept on the account).")


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "email", "is_active", "frozen_at", "payment_expiry_minutes", "created")
    search_fields = ("id", "name", "email")
    list_filter = ("is_active", ("frozen_at", admin.EmptyFieldListFilter))
    readonly_fields = ("id", "created", "frozen_at", "frozen_reason")
    inlines = [MembershipInline, ApiKeyInline]
    actions = ["freeze", "unfreeze"]
    has_freeze_permission = staff_permission("merchants.freeze_merchant")
    # The bounds of the money settings come from the model's validators; the digits must be ASCII.
    formfield_overrides = {models.PositiveIntegerField: {"form_class": AsciiIntegerField},
                           models.PositiveBigIntegerField: {"form_class": AsciiIntegerField}}

    @admin.action(description="Freeze: stop taking payments (asks for a reason)", permissions=["freeze"])
    def freeze(self, request, queryset):
        form = FreezeForm(request.POST if "reason" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(request, "admin/merchants/freeze.html", {
                **self.admin_site.each_context(request), "title": "Freeze merchants", "form": form,
                "merchants": queryset, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            })
        for merchant in queryset:
            try:
                services.merchant_freeze(merchant=merchant, reason=form.cleaned_data["reason"], actor=request.user,
                                         request=request)
            except DomainError as exc:
                self.message_user(request, f"{merchant.pk}: {exc.message}", messages.WARNING)
                continue
            self.log_change(request, merchant, f"Frozen: {form.cleaned_data['reason']}")
            self.message_user(request, f"{merchant.pk} frozen.")
        return None

    @admin.action(description="Unfreeze: take payments again", permissions=["freeze"])
    def unfreeze(self, request, queryset):
        for merchant in queryset:
            try:
                services.merchant_unfreeze(merchant=merchant, actor=request.user, request=request)
            except DomainError as exc:
                self.message_user(request, f"{merchant.pk}: {exc.message}", messages.WARNING)
                continue
            self.log_change(request, merchant, "Unfrozen")
            self.message_user(request, f"{merchant.pk} unfrozen.")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("id", "merchant", "kind", "livemode", "redacted", "created", "expires_at")
    list_filter = ("kind", "livemode")
    search_fields = ("id", "merchant__email", "redacted")
    readonly_fields = ("id", "merchant", "kind", "livemode", "key_hash", "redacted", "created", "last_used")
    fields = readonly_fields + ("name", "permissions", "expires_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # revoked or rolled (an expiry), never deleted: the history of keys stays


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    """The stored response is never shown: it can hold a webhook endpoint's signing secret (create, roll_secret),
    kept only so that a replay returns it as the first response did."""

    list_display = ("key", "merchant", "livemode", "response_status", "created")
    search_fields = ("key", "merchant__email")
    fields = ("key", "merchant", "livemode", "response_status", "created")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Read-only view of the endpoints; the signing secrets are never shown (they are issued through the API or
    `manage.py roll_webhook_secret`). Enabling and disabling go through the service."""

    list_display = ("id", "merchant", "livemode", "url", "status", "failing_since", "deleted", "created")
    list_filter = ("livemode", "status", "deleted", ("merchant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("id", "url", "merchant__email", "merchant__id")
    list_select_related = ("merchant",)
    fields = (
        "id", "merchant", "livemode", "url", "description", "metadata", "enabled_events", "status",
        "disabled_reason", "failing_since", "previous_secret_expires_at", "deleted", "created", "updated",
    )
    readonly_fields = fields
    actions = ["disable_endpoints", "enable_endpoints"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # merchants delete through the API (a soft delete that keeps the delivery history)

    @admin.action(description="Disable the selected endpoints", permissions=["change"])
    def disable_endpoints(self, request, queryset):
        for endpoint in queryset:
            services.webhook_endpoint_update(endpoint=endpoint, disabled=True, actor=request.user, request=request)
        messages.success(request, f"Disabled {queryset.count()} endpoint(s).")

    @admin.action(description="Enable the selected endpoints (clears the failure clock)", permissions=["change"])
    def enable_endpoints(self, request, queryset):
        for endpoint in queryset:
            services.webhook_endpoint_update(endpoint=endpoint, disabled=False, actor=request.user, request=request)
        messages.success(request, f"Enabled {queryset.count()} endpoint(s).")


class TotpDeviceAdmin(admin.ModelAdmin):
    """Staff and merchant authenticators without their seed: no key, no QR code, no otpauth URI (django-otp's own
    admin shows all three). Devices are enrolled by their owner (portal) or `manage.py staff_totp_enrol`; deleting
    one here resets that login's second factor (its owner enrols again at the next login)."""

    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__username", "user__email", "name")
    fields = readonly_fields = ("user", "name", "confirmed", "created_at", "last_used_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# django-otp's own device admin (key, QR code and otpauth URI on every page) goes, also when another device model
# is in use (GATEWAY_TOTP_DEVICE_MODEL).
_device_models = {totp_device_model()}
if apps.is_installed("django_otp.plugins.otp_totp"):
    _device_models.add(apps.get_model("otp_totp", "TOTPDevice"))
for _model in _device_models:
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
admin.site.register(totp_device_model(), TotpDeviceAdmin)
