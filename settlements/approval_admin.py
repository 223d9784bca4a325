"""The admin's "Approve" and "Reject" actions of payouts and refunds held by a limit (settlements.approvals)."""
from functools import partial

from django.contrib import admin

from gateway.admin_site import action_with_form

from .forms import ApprovalDecisionForm, RejectionForm


def approval_actions(*, run_approve, run_reject, noun: str):
    """The "Approve" and "Reject" actions of held payouts or refunds: a page asking for a fresh TOTP code (and the
    reason of a rejection), then one service call per selected object (settlements.approvals); refusals listed."""

    @admin.action(description=f"Approve the selected {noun} awaiting approval (not your own; TOTP)",
                  permissions=["approve"])
    def approve(modeladmin, request, queryset):
        return action_with_form(
            modeladmin, request, queryset, form_class=partial(ApprovalDecisionForm, user=request.user),
            title=f"Approve {noun}", intro="Each is released to sending. Enter a fresh code of your authenticator.",
            run=lambda obj, data: run_approve(obj, actor=request.user, note=data["note"], request=request))

    @admin.action(description=f"Reject the selected {noun} awaiting approval (not your own; TOTP)",
                  permissions=["approve"])
    def reject(modeladmin, request, queryset):
        return action_with_form(
            modeladmin, request, queryset, form_class=partial(RejectionForm, user=request.user),
            title=f"Reject {noun}", intro="Each is canceled and its money returned to where it came from.",
            run=lambda obj, data: run_reject(obj, actor=request.user, note=data["note"], request=request))

    return approve, reject
