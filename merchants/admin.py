from django.contrib import admin

from .models import ApiKey, IdempotencyRecord, Merchant


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("id", "kind", "livemode", "name", "redacted", "created", "expires_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued by `manage.py create_api_key` or the portal, and shown once


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "email", "is_active", "payment_expiry_minutes", "created")
    search_fields = ("id", "name", "email")
    list_filter = ("is_active",)
    readonly_fields = ("id", "created")
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("id", "merchant", "kind", "livemode", "redacted", "created", "expires_at")
    list_filter = ("kind", "livemode")
    search_fields = ("id", "merchant__email", "redacted")
    readonly_fields = ("id", "merchant", "kind", "livemode", "key_hash", "redacted", "created", "last_used")
    fields = readonly_fields + ("name", "permissions", "expires_at")

    def has_add_permission(self, request):
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("key", "merchant", "livemode", "response_status", "created")
    search_fields = ("key", "merchant__email")
    readonly_fields = [f.name for f in IdempotencyRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
