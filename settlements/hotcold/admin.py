"""Admin of hot and cold: the settings are editable (validated by HotColdSettingForm); cold transfers (with their
events) and floor alerts are facts written by the services, shown read-only."""
from django.contrib import admin

from gateway.admin_site import FactAdmin, FactInline

from .forms import HotColdSettingForm
from .models import ColdTransfer, ColdTransferEvent, HotColdSetting, HotWalletAlert, HotWalletTopup


@admin.register(HotColdSetting)
class HotColdSettingAdmin(admin.ModelAdmin):
    form = HotColdSettingForm
    list_display = ("token", "hot_floor_base_units", "hot_ceiling_base_units", "native_floor_base_units",
                    "cold_address", "transfer_gas_limit", "is_active", "updated")
    list_filter = ("is_active", "token__network")
    list_select_related = ("token", "token__network")


class ColdTransferEventInline(FactInline):
    model = ColdTransferEvent
    fields = readonly_fields = ("from_status", "to_status", "detail", "created")


@admin.register(ColdTransfer)
class ColdTransferAdmin(FactAdmin):
    list_display = ("id", "network", "token", "amount_base_units", "status", "to_address", "outgoing_transaction",
                    "created", "updated")
    list_filter = ("status", "network")
    list_select_related = ("network", "token", "token__network", "outgoing_transaction")
    readonly_fields = [f.name for f in ColdTransfer._meta.fields]
    inlines = [ColdTransferEventInline]


@admin.register(HotWalletAlert)
class HotWalletAlertAdmin(FactAdmin):
    list_display = ("id", "network", "asset", "address", "balance_base_units", "floor_base_units", "raised_at",
                    "resolved_at", "resolved_balance_base_units")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter), "network")
    list_select_related = ("network", "token", "token__network")
    readonly_fields = [f.name for f in HotWalletAlert._meta.fields]

    @admin.display(description="asset")
    def asset(self, obj):
        return obj.token.currency.upper() if obj.token_id else f"{obj.network.native_currency.upper()} (native)"


@admin.register(HotWalletTopup)
class HotWalletTopupAdmin(FactAdmin):
    """Recorded with `manage.py ledger topup` (checked on the chain), never by hand here."""

    list_display = ("id", "network", "token", "amount_base_units", "tx_hash", "block_number", "from_cold", "reason",
                    "created")
    list_filter = ("network", "from_cold")
    search_fields = ("tx_hash", "reason")
    list_select_related = ("network", "token", "token__network")
    readonly_fields = [f.name for f in HotWalletTopup._meta.fields]
