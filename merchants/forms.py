from django import forms
from django_otp import user_has_device
from django_otp.forms import OTPAuthenticationForm

from .models import ApiKey
from .models import EncryptedTotpDevice as TOTPDevice  # the seed encrypted at rest


class ApiKeyCreateForm(forms.Form):
    kind = forms.ChoiceField(choices=[(ApiKey.Kind.SECRET, "Secret"), (ApiKey.Kind.PUBLISHABLE, "Publishable")])
    mode = forms.ChoiceField(choices=[("test", "Test"), ("live", "Live")])
    name = forms.CharField(max_length=100, required=False)


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


class PortalLoginForm(OTPAuthenticationForm):
    """Password, then the TOTP code once the user has set up a device (until then the password alone)."""

    def clean_otp(self, user):
        if user is not None and not user_has_device(user):
            return
        super().clean_otp(user)

    def _chosen_device(self, user):
        # The portal gives each user one authenticator app: use it when the form names none.
        return super()._chosen_device(user) or TOTPDevice.objects.filter(user=user, confirmed=True).first()
