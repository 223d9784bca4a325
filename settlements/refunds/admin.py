"""Refunds in the admin: read-only (their changes run through the services), a cancel action, and on unmatched
deposits (payments' admin, extended here: payments cannot import refunds) the action that refunds them with a
reason."""
from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from gateway.admin_site import FactAdmin, staff_permission
from gateway.errors import DomainError
from payments.admin import UnmatchedDepositAdmin
from payments.models import UnmatchedDeposit

from .. import approvals
from ..approval_admin import approval_actions
from . import services
from .models import Refund


@admin.register(Refund)
class RefundAdmin(FactAdmin):
    list_display = ("id", "merchant", "livemode", "status", "amount", "currency", "amount_base_units", "network",
                    "token", "charge", "unmatched_deposit", "pending_reason", "awaiting_approval", "requester",
                    "created")
    list_filter = ("status", "awaiting_approval", "livemode", "network", "pending_reason")
    search_fields = ("id", "merchant__id", "merchant__email", "charge__id", "destination_address")
    readonly_fields = [f.name for f in Refund._meta.fields if f.name != "claim_token"]
    exclude = ("claim_token",)
    list_select_related = ("merchant", "network", "token")
    actions = ["cancel", "approve", "reject"]
    has_cancel_permission = staff_permission("settlements.approve_refund")
    has_approve_permission = staff_permission("settlements.approve_refund")
    approve, reject = approval_actions(
        noun="refunds",
        run_approve=lambda refund, **kw: approvals.refund_approve(refund=refund, **kw),
        run_reject=lambda refund, **kw: approvals.refund_reject(refund=refund, **kw))

    @admin.action(description="Cancel the selected refunds (only those not sent yet)", permissions=["cancel"])
    def cancel(self, request, queryset):
        done = 0
        ctx = services.RefundContext(actor=request.user, request=request)  # recorded after the loop (audit_batch)
        for refund in queryset:
            try:
                services.refund_cancel(refund=refund, ctx=ctx)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{refund.id}: {exc.message}", messages.WARNING)
        self.message_user(request, f"{done} refund(s) canceled.")


class DepositRefundForm(forms.Form):
    description = forms.CharField(label="Reason", max_length=500, widget=forms.Textarea(attrs={"rows": 3}),
                                  help_text="Why the deposit is given back (kept on the refund).")
    destination_address = forms.CharField(
        label="Destination address", max_length=100, required=False,
        help_text="Empty: the refund waits for the customer's address on the claim page (link in the refund).")

    def clean_destination_address(self):
        value = self.cleaned_data["destination_address"].strip()
        if not value:
            return ""
        try:
            return services.destination_address_check(value, param="destination_address")
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc


admin.site.unregister(UnmatchedDeposit)


@admin.register(UnmatchedDeposit)
class RefundableUnmatchedDepositAdmin(UnmatchedDepositAdmin):
    """payments' admin (its "Assign" kept) plus "Refund"; each action behind its own permission."""

    actions = [*UnmatchedDepositAdmin.actions, "refund_deposits"]
    has_refund_permission = staff_permission("settlements.approve_refund")

    @admin.action(description="Refund the selected deposits (whole, in their own token and network)",
                  permissions=["refund"])
    def refund_deposits(self, request, queryset):
        form = DepositRefundForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(request, "admin/settlements/refund_deposits.html", {
                **self.admin_site.each_context(request), "title": "Refund unmatched deposits", "form": form,
                "deposits": queryset, "action": "refund_deposits", "opts": self.model._meta,
            })
        ctx = services.RefundContext(actor=request.user, request=request)  # recorded after the loop (audit_batch)
        for deposit in queryset:
            try:
                refund = services.refund_create_for_deposit(
                    deposit=deposit, description=form.cleaned_data["description"],
                    destination_address=form.cleaned_data["destination_address"], ctx=ctx)
                self.message_user(request, f"{deposit.id}: refund {refund.id} ({refund.status}).")
            except DomainError as exc:
                self.message_user(request, f"{deposit.id}: {exc.message}", messages.WARNING)
        return None
