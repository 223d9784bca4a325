import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import LogEntry
from django.template.response import TemplateResponse

from gateway.admin_site import FactAdmin, ReasonForm, action_with_form, staff_permission
from gateway.errors import DomainError

from .chain.services import NOTE_MAX_LENGTH, balance_discrepancy_resolve, chain_rescan_request
from .blocklist import address_normalise, blocked_address_add, blocked_address_deactivate
from .chain.services import issuer_blacklist_alert_acknowledge
from .models import (BalanceDiscrepancy, BlockedAddress, ChainCursor, DepositAddress, IssuerBlacklistAlert, MasterSeed,
                     Network, Token, Transfer)
from .outgoing.models import OutgoingAttempt, OutgoingTransaction, OutgoingTransactionEvent, SendingAddress


class ConfirmedChangeForm(forms.ModelForm):
    """A change of chain data (contracts, decimals, finality) says why and is confirmed; the reason goes into the
    admin's history (LogEntry) with the fields changed."""

    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Why this change: kept in the object's history with who made it.")
    confirm = forms.BooleanField(label="I have checked this change against the chain and the token's issuer")

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why this change is made.")
        return reason


class ConfirmedChangeAdmin(admin.ModelAdmin):
    """Changes only with a reason and a confirmation (ConfirmedChangeForm); never deleted here (deactivate instead:
    transfers, options and addresses refer to these rows)."""

    form = ConfirmedChangeForm

    def has_delete_permission(self, request, obj=None):
        return False

    def construct_change_message(self, request, form, formsets, add=False):
        changes = LogEntry(change_message=json.dumps(super().construct_change_message(request, form, formsets, add)))
        return f"{changes.get_change_message() or 'No fields changed.'} Reason: {form.cleaned_data['reason']}"


class RescanForm(ReasonForm):
    from_block = forms.IntegerField(min_value=0, help_text="the first block to scan again (the cursor goes back to "
                                                           "the block before it; never forward)")


class TokenInline(admin.TabularInline):
    model = Token
    extra = 0
    fields = ("currency", "contract_address", "decimals", "pegged_currency", "is_active")
    can_delete = False


@admin.register(Network)
class NetworkAdmin(ConfirmedChangeAdmin):
    list_display = ("code", "api_name", "display_name", "chain_id", "livemode", "is_active", "finality", "chain_lag",
                    "rpc_env")
    list_filter = ("livemode", "is_active", "finality")
    list_select_related = ("cursor",)
    search_fields = ("code", "api_name", "display_name")
    inlines = [TokenInline]
    actions = ["rescan"]
    # Set by `manage.py sweep --deploy` only: another sweeper would re-authorize every deposit key to it.
    readonly_fields = ("sweeper_address", "eip7702")

    has_rescan_permission = staff_permission("wallets.rescan_network")

    @admin.action(description="Rescan from a block (with a reason)", permissions=["rescan"])
    def rescan(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=RescanForm, title="Rescan networks",
            intro="The watcher scans again from this block; transfers already recorded are not recorded twice.",
            run=lambda network, data: chain_rescan_request(
                network=network, from_block=data["from_block"], actor=request.user, reason=data["reason"],
                request=request))

    @admin.display(description="lag (blocks)")
    def chain_lag(self, obj):
        """Head minus cursor as the scanner last saw them; empty before the first scan."""
        cursor = getattr(obj, "cursor", None)
        return cursor.lag if cursor is not None else None


@admin.register(Token)
class TokenAdmin(ConfirmedChangeAdmin):
    list_display = ("currency", "network", "contract_address", "decimals", "is_active")
    list_filter = ("network__livemode", "currency", "is_active")
    search_fields = ("contract_address", "network__code")


@admin.register(MasterSeed)
class MasterSeedAdmin(FactAdmin):
    """Shows only public facts; the encrypted fields are not even listed."""

    list_display = ("__str__", "kek_fingerprint", "created", "rotated")
    fields = ("kek_fingerprint", "created", "rotated")
    readonly_fields = fields


@admin.register(DepositAddress)
class DepositAddressAdmin(FactAdmin):
    list_display = ("address", "index", "merchant", "created")
    search_fields = ("address", "merchant__email")
    readonly_fields = ("address", "index", "merchant", "created")


@admin.register(ChainCursor)
class ChainCursorAdmin(FactAdmin):
    """Where each network's scanner stands; the lag is the node's head minus the cursor as last seen."""

    list_display = ("network", "block_number", "head_number", "chain_lag", "finalized_number", "final_lag", "updated")
    list_select_related = ("network",)
    fields = ("network", "block_number", "block_hash", "head_number", "chain_lag", "finalized_number", "final_lag",
              "updated")
    readonly_fields = fields

    @admin.display(description="lag (blocks)")
    def chain_lag(self, obj):
        return obj.lag

    @admin.display(description="head - final")
    def final_lag(self, obj):
        """How far behind the head finality is (reconciliation reads balances at min(cursor, final))."""
        return max(0, obj.head_number - obj.finalized_number)


@admin.register(Transfer)
class TransferAdmin(FactAdmin):
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


@admin.register(BalanceDiscrepancy)
class BalanceDiscrepancyAdmin(FactAdmin):
    """Differences found by reconciliation (manage.py reconcile, beat reconcile_balances). The facts are read-only;
    the one change is "Mark resolved" (wallets.chain.services.balance_discrepancy_resolve), allowed to staff with the
    change permission of this model."""

    list_display = ("id", "network", "wallet", "whose", "token_label", "difference_base_units", "onchain_base_units",
                    "recorded_base_units", "block_number", "detected_at", "resolved_at", "resolved_by")
    list_filter = ("network", "wallet", ("resolved_at", admin.EmptyFieldListFilter), "token", "detected_at")
    list_select_related = ("network", "deposit_address", "token", "token__network", "resolved_by")
    search_fields = ("deposit_address__address", "address", "note")
    fields = ("network", "wallet", "deposit_address", "address", "token_label", "block_number", "onchain_base_units",
              "recorded_base_units", "difference_base_units", "detected_at", "resolved_at", "resolved_by", "note")
    readonly_fields = fields
    date_hierarchy = "detected_at"
    actions = ["mark_resolved"]

    @admin.display(description="address")
    def whose(self, obj):
        return obj.deposit_address.address if obj.deposit_address_id else obj.address

    @admin.display(description="token", ordering="token__currency")
    def token_label(self, obj):
        return obj.token.currency.upper() if obj.token_id else f"{obj.network.native_currency.upper()} (native)"

    has_resolve_permission = staff_permission("wallets.change_balancediscrepancy")

    @admin.action(description="Mark resolved", permissions=["resolve"])
    def mark_resolved(self, request, queryset):
        """First a page asking for a note; on its submission, one service call per selected open discrepancy."""
        if "apply" not in request.POST:
            return TemplateResponse(request, "admin/wallets/balancediscrepancy/resolve.html", {
                **self.admin_site.each_context(request),
                "title": "Mark discrepancies resolved",
                "opts": self.model._meta,
                "discrepancies": queryset.select_related("network", "deposit_address", "token"),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "note_max_length": NOTE_MAX_LENGTH,
            })
        note = request.POST.get("note", "")
        resolved, refused = 0, []
        for discrepancy in queryset.order_by("id"):
            try:
                balance_discrepancy_resolve(discrepancy=discrepancy, user=request.user, note=note)
            except DomainError as exc:
                refused.append(f"#{discrepancy.pk}: {exc.message}")
            else:
                resolved += 1
        if resolved:
            self.message_user(request, f"{resolved} discrepancies marked resolved.", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)
        return None


# --- The transaction manager (wallets/outgoing/): read-only, every change goes through its services ---------------



@admin.register(SendingAddress)
class SendingAddressAdmin(FactAdmin):
    list_display = ("address", "network", "purpose", "next_nonce", "key_ref", "created")
    list_filter = ("network", "purpose")


class OutgoingAttemptInline(admin.TabularInline):
    model = OutgoingAttempt
    extra = 0
    fields = ("number", "kind", "tx_hash", "gas_price", "max_fee_per_gas", "max_priority_fee_per_gas", "created")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class OutgoingTransactionEventInline(admin.TabularInline):
    model = OutgoingTransactionEvent
    extra = 0
    fields = ("created", "from_status", "to_status", "attempt", "detail")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutgoingTransaction)
class OutgoingTransactionAdmin(FactAdmin):
    list_display = ("id", "network", "from_address", "nonce", "to_address", "value_base_units", "status", "purpose",
                    "source_reference", "created")
    list_filter = ("network", "status", "purpose")
    search_fields = ("from_address", "to_address", "source_reference", "attempts__tx_hash")
    exclude = ("data",)
    inlines = [OutgoingAttemptInline, OutgoingTransactionEventInline]


class BlockedAddressForm(forms.ModelForm):
    """Add an address by hand: the address and why (the reason is the audit record's reason too)."""

    class Meta:
        model = BlockedAddress
        fields = ("address", "reason", "list_reference")

    def clean_address(self):
        address = address_normalise(self.cleaned_data["address"])
        if address is None:
            raise forms.ValidationError("An address is 0x followed by 40 hexadecimal digits.")
        if BlockedAddress.objects.filter(address=address, active=True).exists():
            raise forms.ValidationError("This address is blocked already.")
        return address

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why this address is blocked.")
        return reason


@admin.register(BlockedAddress)
class BlockedAddressAdmin(admin.ModelAdmin):
    """The address blocklist (wallets/blocklist.py; `manage.py blocklist import` fills it from a CSV or OFAC's SDN
    XML). Added here by hand (source manual) or deactivated with a reason; never edited or deleted."""

    list_display = ("address", "active", "source", "list_reference", "reason", "added_at", "added_by",
                    "deactivated_at", "deactivated_by")
    list_filter = ("active", "source", "added_at")
    search_fields = ("address", "reason", "list_reference")
    readonly_fields = ("source", "added_at", "added_by", "active", "deactivated_at", "deactivated_by",
                       "deactivation_reason")
    form = BlockedAddressForm
    actions = ["deactivate"]

    has_deactivate_permission = staff_permission("wallets.deactivate_blockedaddress")

    def get_fields(self, request, obj=None):
        return ("address", "reason", "list_reference") + (self.readonly_fields if obj else ())

    def get_readonly_fields(self, request, obj=None):
        return ("address", "reason", "list_reference") + self.readonly_fields if obj else ()

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # The service writes the row and its audit record (blocked_address.add); the admin's own admin.add record
        # follows in the same transaction.
        row = blocked_address_add(address=form.cleaned_data["address"], reason=form.cleaned_data["reason"],
                                  list_reference=form.cleaned_data.get("list_reference", ""), actor=request.user,
                                  request=request)
        obj.pk = row.pk
        obj.refresh_from_db()

    @admin.action(description="Deactivate (unblock, with a reason)", permissions=["deactivate"])
    def deactivate(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=ReasonForm, title="Unblock addresses",
            intro="Transfers from these addresses will be credited again and refunds or payouts to them allowed. "
                  "Deposits already held stay held until released.",
            run=lambda row, data: blocked_address_deactivate(blocked=row, actor=request.user, reason=data["reason"],
                                                            request=request))


@admin.register(IssuerBlacklistAlert)
class IssuerBlacklistAlertAdmin(FactAdmin):
    """A token issuer blacklisted one of our addresses (USDT AddedBlackList, USDC Blacklisted): the funds there
    cannot move. Raised by the scanner (log, email to staff); "Acknowledge" records who looked and what was done."""

    list_display = ("raised_at", "network", "token", "event", "kind", "address", "tx_hash", "block_number",
                    "acknowledged_at", "acknowledged_by")
    list_filter = ("network", "kind", "event", ("acknowledged_at", admin.EmptyFieldListFilter))
    list_select_related = ("network", "token", "token__network")
    search_fields = ("address", "tx_hash")
    fields = ("network", "token", "event", "kind", "address", "deposit_address", "tx_hash", "log_index",
              "block_number", "block_hash", "raised_at", "acknowledged_at", "acknowledged_by", "note")
    readonly_fields = fields
    actions = ["acknowledge"]

    has_acknowledge_permission = staff_permission("wallets.acknowledge_issuerblacklistalert")

    @admin.action(description="Acknowledge (with a note)", permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=ReasonForm, title="Acknowledge issuer blacklist alerts",
            intro="Say what was done (the merchant told, the issuer contacted, funds written off ...).",
            run=lambda alert, data: issuer_blacklist_alert_acknowledge(alert=alert, actor=request.user,
                                                                      note=data["reason"], request=request))
