from django import forms
from django.contrib import admin

from gateway.admin_site import FactAdmin, FactInline, action_with_form, staff_permission
from gateway.errors import DomainError
from gateway.forms import AsciiIntegerField

from . import approvals
from .approval_admin import approval_actions
from .adjustments import (ledger_adjustment_approve, ledger_adjustment_propose, ledger_adjustment_reject,
                          ledger_adjustment_validate)
from .models import (
    FeeSchedule,
    JournalTransaction,
    LedgerAccount,
    LedgerAdjustment,
    LedgerBalance,
    LedgerEntry,
    MerchantTerms,
    Payout,
    PayoutAddress,
    PayoutAddressEvent,
    PayoutSchedule,
    Sweep,
    SweepEvent,
    SweepItem,
    SweepPolicy,
)


class LedgerEntryInline(FactInline):
    model = LedgerEntry
    fields = readonly_fields = ("account", "amount")
    extra = 0


@admin.register(JournalTransaction)
class JournalTransactionAdmin(FactAdmin):
    list_display = ("id", "kind", "source_type", "source_id", "network", "token", "created")
    list_filter = ("kind", "source_type", "network")
    search_fields = ("source_id",)
    readonly_fields = [f.name for f in JournalTransaction._meta.fields]
    inlines = [LedgerEntryInline]


@admin.register(LedgerAccount)
class LedgerAccountAdmin(FactAdmin):
    list_display = ("id", "kind", "merchant", "network", "token", "address", "livemode", "running_balance")
    list_filter = ("kind", "livemode", "network")
    search_fields = ("merchant__id", "merchant__email", "address")
    readonly_fields = [f.name for f in LedgerAccount._meta.fields]
    list_select_related = ("merchant", "network", "token", "balance")

    @admin.display(description="balance (debit +, credit -)")
    def running_balance(self, obj):
        return obj.balance.balance


@admin.register(LedgerBalance)
class LedgerBalanceAdmin(FactAdmin):
    list_display = ("account", "balance", "updated")
    list_select_related = ("account__merchant", "account__network", "account__token")
    readonly_fields = ("account", "balance", "updated")


@admin.register(MerchantTerms)
class MerchantTermsAdmin(admin.ModelAdmin):
    list_display = ("merchant", "hold_seconds")
    search_fields = ("merchant__id", "merchant__email")
    raw_id_fields = ("merchant",)


@admin.register(FeeSchedule)
class FeeScheduleAdmin(admin.ModelAdmin):
    list_display = ("merchant", "token", "fee_bps", "fee_fixed_base_units")
    search_fields = ("merchant__id", "merchant__email")
    raw_id_fields = ("merchant",)


from .hotcold import admin as hotcold_admin  # noqa: E402,F401 (registers the hot/cold admin)
from .refunds import admin as refunds_admin  # noqa: E402,F401 (registers the refunds' admin)
@admin.register(SweepPolicy)
class SweepPolicyAdmin(admin.ModelAdmin):
    list_display = ("network", "token", "is_active", "min_amount_base_units", "max_gas_price_wei",
                    "batch_window_seconds", "max_batch_size")
    list_filter = ("network", "is_active")


class SweepItemInline(FactInline):
    model = SweepItem
    fields = readonly_fields = ("deposit_address", "amount_base_units", "authorization", "open", "swept_base_units",
                                "gas_share", "transaction", "topup")
    extra = 0


class SweepEventInline(FactInline):
    model = SweepEvent
    fields = readonly_fields = ("from_status", "to_status", "detail", "created")
    extra = 0


@admin.register(Sweep)
class SweepAdmin(FactAdmin):
    list_display = ("id", "network", "token", "method", "status", "amount_base_units", "swept_base_units", "gas_used",
                    "created")
    list_filter = ("status", "method", "network")
    readonly_fields = [f.name for f in Sweep._meta.fields]
    inlines = [SweepItemInline, SweepEventInline]
class PayoutAddressEventInline(FactInline):
    model = PayoutAddressEvent
    fields = readonly_fields = ("action", "user", "detail", "created")
    extra = 0


@admin.register(PayoutAddress)
class PayoutAddressAdmin(FactAdmin):
    """Added and removed by the merchant in the portal (with a TOTP code); read-only here, with its history."""
    list_display = ("merchant", "network", "token", "address", "usable_after", "removed_at")
    list_filter = ("livemode", "network")
    search_fields = ("merchant__id", "merchant__email", "address")
    readonly_fields = [f.name for f in PayoutAddress._meta.fields]
    inlines = [PayoutAddressEventInline]


@admin.register(Payout)
class PayoutAdmin(FactAdmin):
    list_display = ("id", "merchant", "status", "amount", "currency", "network", "token", "pending_reason",
                    "awaiting_approval", "requester", "created")
    list_filter = ("status", "awaiting_approval", "livemode", "network", "automatic")
    search_fields = ("id", "merchant__id", "merchant__email", "address")
    readonly_fields = [f.name for f in Payout._meta.fields]
    actions = ["approve", "reject"]
    has_approve_permission = staff_permission("settlements.approve_payout")
    approve, reject = approval_actions(
        noun="payouts",
        run_approve=lambda payout, **kw: approvals.payout_approve(payout=payout, **kw),
        run_reject=lambda payout, **kw: approvals.payout_reject(payout=payout, **kw))


@admin.register(PayoutSchedule)
class PayoutScheduleAdmin(admin.ModelAdmin):
    list_display = ("merchant", "interval", "weekly_anchor", "minimum_amount", "last_run_at")
    search_fields = ("merchant__id", "merchant__email")
    raw_id_fields = ("merchant",)
    readonly_fields = ("last_run_at",)


class LedgerAdjustmentForm(forms.ModelForm):
    """The proposal: two accounts of one asset, an amount in base units, a reason. Posted only once approved."""

    amount_base_units = AsciiIntegerField(min_value=1, help_text="in base units of the accounts' asset (wei-like)")

    class Meta:
        model = LedgerAdjustment
        fields = ("debit_account", "credit_account", "amount_base_units", "reason")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:  # the service's own checks, shown on the form with the field named
            ledger_adjustment_validate(debit_account=data["debit_account"], credit_account=data["credit_account"],
                                       amount_base_units=data["amount_base_units"])
        except DomainError as exc:
            self.add_error(exc.param, exc.message)
        return data


class DecisionForm(forms.Form):
    note = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                           help_text="Approve: optional. Reject: say why.")


@admin.register(LedgerAdjustment)
class LedgerAdjustmentAdmin(admin.ModelAdmin):
    """Maker-checker: "Add" proposes (settlements.adjustments), a second staff member approves (posts the journal
    transaction) or rejects; nobody decides their own. Never edited or deleted."""

    form = LedgerAdjustmentForm
    list_display = ("id", "status", "amount_base_units", "debit_account", "credit_account", "proposed_by",
                    "decided_by", "created", "decided_at")
    list_filter = ("status",)
    search_fields = ("id", "reason")
    raw_id_fields = ("debit_account", "credit_account")
    actions = ["approve", "reject"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [f.name for f in LedgerAdjustment._meta.fields]

    def get_fields(self, request, obj=None):
        return LedgerAdjustmentForm.Meta.fields if obj is None else [f.name for f in LedgerAdjustment._meta.fields]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    has_approve_permission = staff_permission("settlements.approve_ledgeradjustment")

    def save_model(self, request, obj, form, change):
        """Through the service (with its audit record); the admin's form only carried the input."""
        data = form.cleaned_data
        proposed = ledger_adjustment_propose(
            debit_account=data["debit_account"], credit_account=data["credit_account"],
            amount_base_units=data["amount_base_units"], reason=data["reason"], actor=request.user, request=request)
        obj.pk, obj.status, obj.proposed_by, obj.created = proposed.pk, proposed.status, request.user, proposed.created
        obj._state.adding = False

    @admin.action(description="Approve and post (not your own)", permissions=["approve"])
    def approve(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=DecisionForm, title="Approve adjustments",
            intro="Each is posted to the ledger as one adjustment journal transaction.",
            run=lambda adjustment, data: ledger_adjustment_approve(
                adjustment=adjustment, actor=request.user, note=data["note"], request=request))

    @admin.action(description="Reject (not your own)", permissions=["approve"])
    def reject(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=DecisionForm, title="Reject adjustments",
            run=lambda adjustment, data: ledger_adjustment_reject(
                adjustment=adjustment, actor=request.user, note=data["note"], request=request))
