"""Every admin change recorded once, for every model admin: GatewayAdminSite.register puts AuditedAdminMixin in
front of each ModelAdmin class. Additions, changes (before and after), deletions and the actions each write one
audit record in the transaction of the change (Django's changeform and delete views are atomic; actions are wrapped
here). Django's own LogEntry is still written beside it."""
from functools import wraps

from django.contrib.admin import helpers
from django.db import transaction
from django.http import HttpResponseRedirect

from .services import audit_batch, audit_record, model_snapshot

_BEFORE = "_audit_before"


def _reason(request, form=None, message="") -> str:
    """The reason a form or an action page asked for (a `reason` or `note` field), else Django's change message."""
    cleaned = getattr(form, "cleaned_data", None) or {}
    reason = cleaned.get("reason") or request.POST.get("reason") or request.POST.get("note") or ""
    return str(reason).strip() or (message if isinstance(message, str) else "")


def _action_recorded(func, name):
    @wraps(func)
    def run(modeladmin, request, queryset):
        with transaction.atomic(), audit_batch():  # the services' records too, after the action's last lock
            ids = [str(pk) for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)]
            response = func(modeladmin, request, queryset)
            # An intermediate page (a confirmation, a form asking for a reason) changes nothing yet: recorded when
            # it is submitted and the action returns to the list.
            if response is None or isinstance(response, HttpResponseRedirect):
                audit_record(actor=request.user, action=f"admin.action.{name}",
                             after={"model": modeladmin.model._meta.label_lower, "ids": ids},
                             reason=_reason(request), request=request)
            return response

    run.__audited__ = True
    return run


class AuditedAdminMixin:
    """Put in front of every registered ModelAdmin by GatewayAdminSite."""

    def save_model(self, request, obj, form, change):
        if change and obj.pk is not None:
            current = type(obj)._default_manager.filter(pk=obj.pk).first()
            stash = getattr(request, _BEFORE, {})
            stash[(obj._meta.label_lower, str(obj.pk))] = model_snapshot(current) if current else None
            setattr(request, _BEFORE, stash)
        request._audit_form = form
        super().save_model(request, obj, form, change)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        with transaction.atomic():
            audit_record(actor=request.user, action="admin.add", obj=obj, after=model_snapshot(obj),
                         reason=_reason(request, getattr(request, "_audit_form", None)), request=request)
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        before = getattr(request, _BEFORE, {}).pop((obj._meta.label_lower, str(obj.pk)), None)
        change = entry.get_change_message() if entry is not None else ""
        with transaction.atomic():
            audit_record(actor=request.user, action="admin.change", obj=obj, before=before, after=model_snapshot(obj),
                         reason=_reason(request, getattr(request, "_audit_form", None)) or change, request=request)
        return entry

    def log_deletions(self, request, queryset):
        objects = list(queryset)
        with transaction.atomic():
            for obj in objects:
                audit_record(actor=request.user, action="admin.delete", obj=obj, before=model_snapshot(obj),
                             reason=_reason(request), request=request)
        return super().log_deletions(request, queryset)

    def get_actions(self, request):
        actions = super().get_actions(request)
        return {name: (func if getattr(func, "__audited__", False) else _action_recorded(func, name), name, desc)
                for name, (func, name, desc) in actions.items()}
