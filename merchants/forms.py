import re

from django import forms
from django.contrib.auth import password_validation
from django.core.validators import validate_email

from gateway.api.input import printable, validate_text
from gateway.otp import TotpAuthenticationForm

from . import branding
from .models import (
    ACCENT_COLOR_RE, NOTIFICATION_EMAILS_MAX, PAYMENT_EXPIRY_MINUTES_MAX, PAYMENT_EXPIRY_MINUTES_MIN,
    STATEMENT_DESCRIPTOR_MAX, UNDERPAYMENT_TOLERANCE_BPS_MAX, ApiKey, Role,
)


class ApiKeyCreateForm(forms.Form):
    kind = forms.ChoiceField(choices=[(ApiKey.Kind.SECRET, "Secret"), (ApiKey.Kind.PUBLISHABLE, "Publishable")])
    mode = forms.ChoiceField(choices=[("test", "Test"), ("live", "Live")])
    name = forms.CharField(max_length=100, required=False, validators=[validate_text])


class ApiKeyRollForm(forms.Form):
    """When the old key stops working, the choices of Stripe's dashboard: now, or after a grace period of up to
    7 days (services.API_KEY_ROLL_MAX_GRACE)."""

    GRACE_HOURS = [
        (0, "old key expires now"), (1, "old key expires in 1 hour"), (24, "old key expires in 24 hours"),
        (72, "old key expires in 3 days"), (168, "old key expires in 7 days"),
    ]

    expires_in_hours = forms.TypedChoiceField(
        label="Old key expires", choices=GRACE_HOURS, coerce=int, initial=0,
        widget=forms.Select(attrs={"aria-label": "Old key expires"}),
    )


class TotpConfirmForm(forms.Form):
    token = forms.CharField(label="6-digit code", min_length=6, max_length=8)

    def __init__(self, *args, device, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_token(self):
        token = self.cleaned_data["token"].strip()
        if not self.device.verify_token(token):
            raise forms.ValidationError("That code is not right; check your authenticator app's clock and try again.")
        return token


class PortalLoginForm(TotpAuthenticationForm):
    """Email, password and code in one form, one message for any failure (gateway.otp). A login without a confirmed
    device yet gets in on the password alone and is sent to enrolment, where it can do nothing else."""

    enrolment_allowed = True


class NewPasswordMixin(forms.Form):
    """A new password, typed twice, checked by AUTH_PASSWORD_VALIDATORS."""

    password1 = forms.CharField(label="Password", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label="Password again", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean_password2(self):
        password1, password2 = self.cleaned_data.get("password1"), self.cleaned_data.get("password2")
        if password1 and password2 and password1 != password2:
            raise forms.ValidationError("The two passwords differ.")
        if password2:
            password_validation.validate_password(password2)
        return password2


class SignupForm(NewPasswordMixin):
    name = forms.CharField(label="Business name", max_length=200, validators=[validate_text])
    email = forms.EmailField(label="Email", max_length=254)
    field_order = ["name", "email", "password1", "password2"]


class InvitationAcceptForm(NewPasswordMixin):
    """For an invited address that has no login yet."""


class InvitationCreateForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices)


class MembershipRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, widget=forms.Select(attrs={"aria-label": "Role"}))


class LivemodeForm(forms.Form):
    livemode = forms.TypedChoiceField(choices=[("0", "Test"), ("1", "Live")], coerce=lambda v: v == "1")


class MerchantSwitchForm(forms.Form):
    merchant = forms.CharField(max_length=32)


# --- Settings (merchants.settings_views; the payment methods form is payments.portal.forms') ---------------------

class SettingsForm(forms.Form):
    """A settings section: read-only (every field disabled) for a role without `settings.write`."""

    def __init__(self, *args, read_only: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if read_only:
            for field in self.fields.values():
                field.disabled = True


class ProfileForm(SettingsForm):
    public_name = forms.CharField(
        label="Public business name", max_length=200, required=False, validators=[validate_text],
        help_text="What customers see on the checkout and in receipts; empty: the account's name.")
    support_email = forms.EmailField(label="Support email", max_length=254, required=False)
    website_url = forms.URLField(
        label="Website", max_length=2048, required=False, assume_scheme="https",
        help_text="The checkout's “Return to” link when a payment has no return_url of its own (https:// or http://).")
    statement_descriptor = forms.CharField(
        label="Statement descriptor", max_length=STATEMENT_DESCRIPTOR_MAX, required=False,
        help_text=f"A short name for receipts and emails: 5 to {STATEMENT_DESCRIPTOR_MAX} letters, digits, spaces, "
                  "dots, commas or hyphens.")

    def clean_website_url(self):
        url = self.cleaned_data["website_url"]
        if url and not url.lower().startswith(("https://", "http://")):
            raise forms.ValidationError("Use an https:// or http:// address.")
        return url

    def clean_statement_descriptor(self):
        value = self.cleaned_data["statement_descriptor"].strip()
        if value and not re.fullmatch(r"[A-Za-z0-9 .,\-]{5,%d}" % STATEMENT_DESCRIPTOR_MAX, value):
            raise forms.ValidationError(f"Use 5 to {STATEMENT_DESCRIPTOR_MAX} letters, digits, spaces, dots, commas "
                                        "or hyphens.")
        if value and not re.search(r"[A-Za-z]", value):
            raise forms.ValidationError("Use at least one letter.")
        return value


class BrandingForm(SettingsForm):
    accent_color = forms.CharField(
        label="Accent colour", max_length=7, required=False,
        widget=forms.TextInput(attrs={"placeholder": "#4338ca", "pattern": "#[0-9a-fA-F]{6}", "size": 8}),
        help_text="#rrggbb; the checkout's buttons use it, with black or white text, whichever reads better.")
    logo = forms.FileField(
        label="Logo", required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
        help_text=f"PNG, JPEG or WebP, at most {branding.LOGO_MAX_UPLOAD_BYTES // (1024 * 1024)} MB; shown at most "
                  f"{branding.LOGO_MAX_SIDE} x {branding.LOGO_MAX_SIDE} pixels.")
    logo_remove = forms.BooleanField(label="Remove the logo", required=False)

    def clean_accent_color(self):
        value = self.cleaned_data["accent_color"].strip().lower()
        if value and not re.fullmatch(ACCENT_COLOR_RE, value):
            raise forms.ValidationError("Use a colour written #rrggbb, e.g. #2d5bff.")
        return value

    def clean_logo(self):
        upload = self.cleaned_data.get("logo")
        if not upload:
            return None
        try:
            return branding.logo_process(upload)
        except branding.LogoError as exc:
            raise forms.ValidationError(str(exc)) from None


class CheckoutSettingsForm(SettingsForm):
    payment_expiry_minutes = forms.IntegerField(
        label="Payment expiry (minutes)", min_value=PAYMENT_EXPIRY_MINUTES_MIN, max_value=PAYMENT_EXPIRY_MINUTES_MAX,
        help_text=f"How long a new payment waits for funds: {PAYMENT_EXPIRY_MINUTES_MIN} minutes to 7 days "
                  f"({PAYMENT_EXPIRY_MINUTES_MAX} minutes).")
    underpayment_tolerance_bps = forms.IntegerField(
        label="Underpayment tolerance (basis points)", min_value=0, max_value=UNDERPAYMENT_TOLERANCE_BPS_MAX,
        help_text=f"A payment short by at most this much still succeeds: 100 = 1 %, at most "
                  f"{UNDERPAYMENT_TOLERANCE_BPS_MAX} (10 %).")
    accept_late_payments = forms.BooleanField(
        label="Accept late payments", required=False,
        help_text="A payment that arrives in full after the expiry succeeds; otherwise it is kept as unmatched, for "
                  "a refund.")


class NotificationsForm(SettingsForm):
    notification_emails = forms.CharField(
        label="Notification emails", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"Up to {NOTIFICATION_EMAILS_MAX} addresses, one a line or separated by commas; empty: the "
                  "team's owners.")
    notify_payment_succeeded = forms.BooleanField(label="Email me each payment received", required=False)
    notify_webhook_failing = forms.BooleanField(label="Email me when a webhook endpoint keeps failing",
                                                required=False)
    notify_daily_summary = forms.BooleanField(label="Email me a daily summary (yesterday's payments, UTC)",
                                              required=False)

    def clean_notification_emails(self):
        addresses = []
        for raw in re.split(r"[\s,;]+", self.cleaned_data["notification_emails"]):
            address = raw.strip()
            if not address:
                continue
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(f"{printable(address)[:100]} is not an email address.") from None
            if address.lower() not in (a.lower() for a in addresses):
                addresses.append(address)
        if len(addresses) > NOTIFICATION_EMAILS_MAX:
            raise forms.ValidationError(f"At most {NOTIFICATION_EMAILS_MAX} addresses.")
        return addresses
