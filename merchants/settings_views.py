"""The portal's settings pages (docs/portal.md, "Settings"): Business, Branding, Checkout and Notifications; the
Payment methods section (networks and tokens, which `merchants` cannot read) is payments.portal.settings_views'.

Each section is a page (GET, `settings.view`: every role reads it, the form disabled without `settings.write`) and a
save action (POST, `settings.write`) that validates the section's form and calls its one service; a form error
answers 400 with the page and the field named, and nothing is written. A `Section` describes one; its two views are
made from it."""
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Section:
    """One settings section: its page (the form filled from the merchant, disabled without `settings.write`) and its
    save action (the form validated, then its one service; a form error answers 400 with the page)."""
    tab: str  # the URL name of its page (and its tab)
    title: str
    save_url: str
    intro: str
    form: type
    initial: Callable  # (merchant) -> the form's initial values
    save: Callable  # (request, cleaned_data) -> None: the section's one service call
    saved: str  # "<saved> saved."
    extra: Callable = lambda request: {}  # (request) -> more of the page's context
    guard: Callable = lambda permission: portal_required(permission=permission)  # (permission) -> view decorator

    def render(self, request, form, status: int = 200):
        return section_render(request, tab=self.tab, title=self.title, form=form, save_url=self.save_url,
                              intro=self.intro, extra=self.extra(request), status=status)

    def views(self, name: str, module: str = __name__):
        """(page, save): the section's two views, named `name` and `name`_save in `module` (what the URL
        configuration, the permission registries and tracebacks show)."""
        def page(request):
            return self.render(request, self.form(initial=self.initial(request.portal_merchant),
                                                  read_only=not can_edit(request)))

        def save(request):
            form = self.form(request.POST, request.FILES)
            if not form.is_valid():
                return self.render(request, form, status=400)
            self.save(request, form.cleaned_data)
            messages.success(request, f"{self.saved} saved.")
            return redirect(self.tab)

        for view, view_name in ((page, name), (save, f"{name}_save")):
            view.__name__ = view.__qualname__ = view_name
            view.__module__ = module
        return self.guard("settings.view")(page), self.guard("settings.write")(require_POST(save))


def _branding_extra(request) -> dict:
    logo = MerchantLogo.objects.filter(merchant_id=request.portal_merchant.pk).first()
    accent = request.portal_merchant.brand_accent_color
    return {"logo_url": branding.logo_data_url(logo.image, logo.content_type) if logo else "", "logo": logo,
            "accent": accent, "accent_text": branding.readable_text_color(accent) if accent else ""}


BUSINESS = Section(
    tab="portal:settings", title="Business", save_url="portal:settings-business-save", form=ProfileForm,
    intro="What your customers see on the checkout and in your emails.",
    initial=lambda m: {"public_name": m.public_name, "support_email": m.support_email,
                       "website_url": m.website_url, "statement_descriptor": m.statement_descriptor},
    save=lambda request, data: services.merchant_profile_update(merchant=request.portal_merchant, request=request,
                                                                **data),
    saved="Business profile",
)
BRANDING = Section(
    tab="portal:settings-branding", title="Branding", save_url="portal:settings-branding-save", form=BrandingForm,
    intro="The checkout shows your logo and uses your accent colour for its buttons.",
    initial=lambda m: {"accent_color": m.brand_accent_color},
    save=lambda request, data: services.merchant_branding_update(
        merchant=request.portal_merchant, accent_color=data["accent_color"], logo=data["logo"],
        logo_remove=data["logo_remove"], request=request),
    saved="Branding", extra=_branding_extra,
)
CHECKOUT = Section(
    tab="portal:settings-checkout", title="Checkout", save_url="portal:settings-checkout-save",
    form=CheckoutSettingsForm,
    intro="How new payments wait for funds and what counts as paid. Payments already created keep their expiry.",
    initial=lambda m: {"payment_expiry_minutes": m.payment_expiry_minutes,
                       "underpayment_tolerance_bps": m.underpayment_tolerance_bps,
                       "accept_late_payments": m.accept_late_payments},
    save=lambda request, data: services.merchant_checkout_settings_update(merchant=request.portal_merchant,
                                                                          request=request, **data),
    saved="Checkout settings",
)
NOTIFICATIONS = Section(
    tab="portal:settings-notifications", title="Notifications", save_url="portal:settings-notifications-save",
    form=NotificationsForm,
    intro="The emails you want. A webhook endpoint that is disabled after 3 days of failures is always emailed.",
    initial=lambda m: {"notification_emails": "\n".join(m.notification_emails),
                       "notify_payment_succeeded": m.notify_payment_succeeded,
                       "notify_webhook_failing": m.notify_webhook_failing,
                       "notify_daily_summary": m.notify_daily_summary},
    save=lambda request, data: services.merchant_notifications_update(merchant=request.portal_merchant,
                                                                      request=request, **data),
    saved="Notification settings",
)

settings_business, settings_business_save = BUSINESS.views("settings_business")
settings_branding, settings_branding_save = BRANDING.views("settings_branding")
settings_checkout, settings_checkout_save = CHECKOUT.views("settings_checkout")
settings_notifications, settings_notifications_save = NOTIFICATIONS.views("settings_notifications")
