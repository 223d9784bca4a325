from django import forms
from django.contrib.auth import password_validation

from gateway.api.input import validate_text
from gateway.otp import TotpAuthenticationForm

from .models import ApiKey, Role


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
