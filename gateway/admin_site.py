"""The Django admin behind a second factor: user name + password + a code from the staff member's confirmed TOTP
device (gateway.otp). A staff user without a confirmed device cannot get in; an operator enrols the first one with
`manage.py staff_totp_enrol --username U`. Installed as the default admin site by gateway.apps.GatewayAdminConfig,
so every app's `@admin.register` lands here.

Every model admin registered here records its changes in the audit trail (audit.admin_hooks.AuditedAdminMixin is put
in front of its class at registration, Django's own User and Group admins included), and its JSON fields, its
inlines' too, follow the input rule (SafeInputAdminMixin)."""
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import models
from django.forms.fields import InvalidJSONInput
from django.template.response import TemplateResponse
from django_otp.admin import OTPAdminSite

from audit.admin_hooks import AuditedAdminMixin

from .api.input import tree_is_allowed
from .errors import DomainError
from .otp import TotpAdminAuthenticationForm
from .ratelimit import login_limited


class SafeJSONFormField(forms.JSONField):
    """The admin's JSON fields under the input rule (gateway.api.input): a `\\u0000` escape decodes to a NUL that
    PostgreSQL's jsonb refuses (a 500); it is a form error naming the field instead."""

    def to_python(self, value):
        decoded = super().to_python(value)
        if not tree_is_allowed(decoded):
            raise forms.ValidationError("This value contains a disallowed character (a NUL, a control character or "
                                        "a lone surrogate).", code="disallowed_character")
        return decoded

    def bound_data(self, data, initial):
        # Shown again as typed (escapes and all): a decoded lone surrogate cannot be written out as UTF-8
        bound = super().bound_data(data, initial)
        return bound if tree_is_allowed(bound) else InvalidJSONInput(data)


class SafeInputAdminMixin:
    """Put in front of every model admin and its inlines: the JSON fields' form field is SafeJSONFormField."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", SafeJSONFormField)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class GatewayAdminSite(OTPAdminSite):
    login_form = TotpAdminAuthenticationForm
    login_template = "admin/login_totp.html"

    def __init__(self, name="admin"):
        super().__init__(name)

    def login(self, request, extra_context=None):
        return login_limited(super().login)(request, extra_context)

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditedAdminMixin):
            inlines = [inline if issubclass(inline, SafeInputAdminMixin) else
                       type(inline.__name__, (SafeInputAdminMixin, inline), {"__module__": inline.__module__})
                       for inline in admin_class.inlines]
            admin_class = type(admin_class.__name__, (SafeInputAdminMixin, AuditedAdminMixin, admin_class),
                               {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__,
                                "inlines": inlines})
        super().register(model_or_iterable, admin_class, **options)


class ReadOnlyMixin:
    """Shown, never added, edited or deleted by hand (for model admins and inlines alike)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class FactAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Append-only facts written by services only: shown, never added, edited or deleted by hand (their own actions,
    e.g. "Resend" or "Mark resolved", still run through their service)."""


class FactInline(ReadOnlyMixin, admin.TabularInline):
    """The rows of a fact shown inside its parent's page, read-only."""

    extra = 0


def staff_permission(name: str):
    """`has_<verb>_permission` of a model admin for an action guarded by one permission (`app_label.codename`):
    `has_cancel_permission = staff_permission("payments.cancel_paymentintent")`, then
    `@admin.action(permissions=["cancel"])`."""
    def has_permission(modeladmin, request) -> bool:
        return request.user.has_perm(name)

    return has_permission


class ReasonForm(forms.Form):
    """What every manual correction asks for first: why (kept in the audit trail with who did it)."""

    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                             help_text="Why: kept in the audit trail with your name.")

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why this correction is made.")
        return reason


def action_with_form(modeladmin, request, queryset, *, form_class, title: str, run, intro: str = ""):
    """An admin action that needs input (a reason first of all): first the form's page (returned to Django, which
    shows it); once submitted and valid, `run(obj, cleaned_data)` (one service call) for each selected object, the
    refusals (DomainError) shown, the rest counted, and back to the list."""
    submitted = "apply" in request.POST
    form = form_class(request.POST if submitted else None)
    if not (submitted and form.is_valid()):
        return TemplateResponse(request, "admin/action_form.html", {
            **modeladmin.admin_site.each_context(request),
            "title": title, "intro": intro, "opts": modeladmin.model._meta, "objects": queryset, "form": form,
            "action": request.POST.get("action", ""), "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })
    objects, done = list(queryset), 0
    for obj in objects:
        try:
            run(obj, form.cleaned_data)
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj.pk}: {exc.message}", messages.WARNING)
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"Done for {done} of {len(objects)}.", messages.SUCCESS)
    return None
