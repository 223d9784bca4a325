from django.contrib import admin

from .models import ChainCursor, DepositAddress, MasterSeed, Network, Token, Transfer


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


class _ReadOnlyAdmin(admin.ModelAdmin):
    """The chain watcher's facts: written by the scanner only, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ChainCursor)
class ChainCursorAdmin(_ReadOnlyAdmin):
    """Where each network's scanner stands; the lag is the node's head minus the cursor as last seen."""

    list_display = ("network", "block_number", "head_number", "chain_lag", "finalized_number", "updated")
    list_select_related = ("network",)
    fields = ("network", "block_number", "block_hash", "head_number", "finalized_number", "updated")
    readonly_fields = fields

    @admin.display(description="lag (blocks)")
    def chain_lag(self, obj):
        return obj.lag


@admin.register(Transfer)
class TransferAdmin(_ReadOnlyAdmin):
    list_display = ("tx_hash", "log_index", "network", "token", "to_address", "amount_base_units", "block_number",
                    "seen_at", "finalized_at", "orphaned_at")
    list_filter = ("network", ("finalized_at", admin.EmptyFieldListFilter), ("orphaned_at", admin.EmptyFieldListFilter))
    list_select_related = ("network", "token", "token__network")
    search_fields = ("tx_hash", "to_address", "from_address")
    readonly_fields = ("network", "token", "tx_hash", "log_index", "block_number", "block_hash", "from_address",
                       "to_address", "deposit_address", "amount_base_units", "seen_at", "finalized_at", "orphaned_at")
    fields = readonly_fields
    raw_id_fields = ("deposit_address",)
    date_hierarchy = "seen_at"
