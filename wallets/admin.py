from django.contrib import admin

from .models import DepositAddress, MasterSeed, Network, Token


class TokenInline(admin.TabularInline):
    model = Token
    extra = 0
    fields = ("currency", "contract_address", "decimals", "pegged_currency", "is_active")


@admin.register(Network)
class NetworkAdmin(admin.ModelAdmin):
    list_display = ("code", "api_name", "display_name", "chain_id", "livemode", "is_active", "finality", "rpc_env")
    list_filter = ("livemode", "is_active", "finality")
    search_fields = ("code", "api_name", "display_name")
    inlines = [TokenInline]


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ("currency", "network", "contract_address", "decimals", "is_active")
    list_filter = ("network__livemode", "currency", "is_active")
    search_fields = ("contract_address", "network__code")


@admin.register(MasterSeed)
class MasterSeedAdmin(admin.ModelAdmin):
    """Shows only public facts; the encrypted fields are not even listed."""

    list_display = ("__str__", "kek_fingerprint", "created", "rotated")
    fields = ("kek_fingerprint", "created", "rotated")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DepositAddress)
class DepositAddressAdmin(admin.ModelAdmin):
    list_display = ("address", "index", "merchant", "created")
    search_fields = ("address", "merchant__email")
    readonly_fields = ("address", "index", "merchant", "created")

    def has_add_permission(self, request):
        return False
