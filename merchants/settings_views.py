"""The portal's settings pages (docs/portal.md, "Settings"): Business, Branding, Checkout and Notifications; the
Payment methods section (networks and tokens, which `merchants` cannot read) is payments.portal.settings_views'.

Each section is a page (GET, `settings.view`: every role reads it, the form disabled without `settings.write`) and a
save action (POST, `settings.write`) that validates the section's form and calls its one service; a form error
answers 400 with the page and the field named, and nothing is written."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import branding, permissions, services
from .forms import BrandingForm, CheckoutSettingsForm, NotificationsForm, ProfileForm
from .models import MerchantLogo
from .portal import portal_required

# (tab label, URL name of its page): the sections in order (templates/portal/settings/_tabs.html).
TABS = [
    ("Business", "portal:settings"),
    ("Branding", "portal:settings-branding"),
    ("Checkout", "portal:settings-checkout"),
    ("Payment methods", "portal:settings-payment-methods"),
    ("Notifications", "portal:settings-notifications"),
]


def can_edit(request) -> bool:
    return permissions.role_can(request.portal_membership.role, "settings.write")


def section_render(request, *, tab: str, title: str, form, save_url: str, intro: str = "", extra: dict | None = None,
                   status: int = 200):
    return render(request, "portal/settings/section.html", {
        "tabs": TABS, "tab": tab, "title": title, "form": form, "save_url": save_url, "intro": intro,
        "can_edit": can_edit(request), **(extra or {}),
    }, status=status)


def _saved(request, label: str, url_name: str):
    messages.success(request, f"{label} saved.")
    return redirect(url_name)


# Business profile

def _profile_initial(merchant) -> dict:
    return {"public_name": merchant.public_name, "support_email": merchant.support_email,
            "website_url": merchant.website_url, "statement_descriptor": merchant.statement_descriptor}


def _business(request, form, status=200):
    return section_render(request, tab="portal:settings", title="Business", form=form,
                          save_url="portal:settings-business-save", status=status,
                          intro="What your customers see on the checkout and in your emails.")


@portal_required(permission="settings.view")
def settings_business(request):
    return _business(request, ProfileForm(initial=_profile_initial(request.portal_merchant),
                                          read_only=not can_edit(request)))


@portal_required(permission="settings.write")
@require_POST
def settings_business_save(request):
    form = ProfileForm(request.POST)
    if not form.is_valid():
        return _business(request, form, status=400)
    services.merchant_profile_update(merchant=request.portal_merchant, request=request, **form.cleaned_data)
    return _saved(request, "Business profile", "portal:settings")


# Branding

def _branding(request, form, status=200):
    logo = MerchantLogo.objects.filter(merchant_id=request.portal_merchant.pk).first()
    accent = request.portal_merchant.brand_accent_color
    return section_render(request, tab="portal:settings-branding", title="Branding", form=form,
                          save_url="portal:settings-branding-save", status=status,
                          intro="The checkout shows your logo and uses your accent colour for its buttons.",
                          extra={"logo_url": branding.logo_data_url(logo.image, logo.content_type) if logo else "",
                                 "logo": logo, "accent": accent,
                                 "accent_text": branding.readable_text_color(accent) if accent else ""})


@portal_required(permission="settings.view")
def settings_branding(request):
    return _branding(request, BrandingForm(initial={"accent_color": request.portal_merchant.brand_accent_color},
                                           read_only=not can_edit(request)))


@portal_required(permission="settings.write")
@require_POST
def settings_branding_save(request):
    form = BrandingForm(request.POST, request.FILES)
    if not form.is_valid():
        return _branding(request, form, status=400)
    services.merchant_branding_update(
        merchant=request.portal_merchant, accent_color=form.cleaned_data["accent_color"],
        logo=form.cleaned_data["logo"], logo_remove=form.cleaned_data["logo_remove"], request=request)
    return _saved(request, "Branding", "portal:settings-branding")


# Checkout: expiry, tolerance, late payments

def _checkout(request, form, status=200):
    return section_render(request, tab="portal:settings-checkout", title="Checkout", form=form,
                          save_url="portal:settings-checkout-save", status=status,
                          intro="How new payments wait for funds and what counts as paid. Payments already created "
                                "keep their expiry.")


@portal_required(permission="settings.view")
def settings_checkout(request):
    merchant = request.portal_merchant
    return _checkout(request, CheckoutSettingsForm(initial={
        "payment_expiry_minutes": merchant.payment_expiry_minutes,
        "underpayment_tolerance_bps": merchant.underpayment_tolerance_bps,
        "accept_late_payments": merchant.accept_late_payments,
    }, read_only=not can_edit(request)))


@portal_required(permission="settings.write")
@require_POST
def settings_checkout_save(request):
    form = CheckoutSettingsForm(request.POST)
    if not form.is_valid():
        return _checkout(request, form, status=400)
    services.merchant_checkout_settings_update(merchant=request.portal_merchant, request=request, **form.cleaned_data)
    return _saved(request, "Checkout settings", "portal:settings-checkout")


# Notifications

def _notifications(request, form, status=200):
    return section_render(request, tab="portal:settings-notifications", title="Notifications", form=form,
                          save_url="portal:settings-notifications-save", status=status,
                          intro="The emails you want. A webhook endpoint that is disabled after 3 days of failures "
                                "is always emailed.")


@portal_required(permission="settings.view")
def settings_notifications(request):
    merchant = request.portal_merchant
    return _notifications(request, NotificationsForm(initial={
        "notification_emails": "\n".join(merchant.notification_emails),
        "notify_payment_succeeded": merchant.notify_payment_succeeded,
        "notify_webhook_failing": merchant.notify_webhook_failing,
        "notify_daily_summary": merchant.notify_daily_summary,
    }, read_only=not can_edit(request)))


@portal_required(permission="settings.write")
@require_POST
def settings_notifications_save(request):
    form = NotificationsForm(request.POST)
    if not form.is_valid():
        return _notifications(request, form, status=400)
    services.merchant_notifications_update(merchant=request.portal_merchant, request=request, **form.cleaned_data)
    return _saved(request, "Notification settings", "portal:settings-notifications")
