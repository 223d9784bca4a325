"""Second factor for every login (the portal's and the admin's): TOTP devices and the one login form.

Every lookup and write of a TOTP device goes through this module, so that the device model can be swapped (e.g. for
one that keeps its seed encrypted at rest) by changing `GATEWAY_TOTP_DEVICE_MODEL` and nothing else. The model must
be a django-otp `Device` with a TOTP `config_url` and `bin_key` (django-otp's `TOTPDevice` by default).

The login form asks for user name (email), password and code at once and answers every failure with the same
message, so it never tells whether the password alone was right. A wrong code counts as a failed login for
django-axes (the `user_login_failed` signal), like a wrong password.
"""
from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django_otp.models import Device

LOGIN_ERROR = "Incorrect email, password or code."


def totp_device_model() -> type[Device]:
    return apps.get_model(settings.GATEWAY_TOTP_DEVICE_MODEL)


def totp_device_confirmed(*, user) -> Device | None:
    """The user's confirmed authenticator (one per user: the portal and `staff_totp_enrol` keep it so)."""
    return totp_device_model().objects.filter(user=user, confirmed=True).order_by("id").first()


def totp_device_pending(*, user) -> Device:
    """The user's device awaiting its first code, created when there is none."""
    model = totp_device_model()
    device = model.objects.filter(user=user, confirmed=False).order_by("id").first()
    return device or model.objects.create(user=user, name="Authenticator app", confirmed=False)


def totp_device_confirm(*, device: Device) -> None:
    device.confirmed = True
    device.save(update_fields=["confirmed"])


@transaction.atomic
def totp_device_replace(*, user, name: str) -> Device:
    """A new confirmed device in place of all of the user's devices (operator enrolment, `staff_totp_enrol`)."""
    model = totp_device_model()
    model.objects.filter(user=user).delete()
    return model.objects.create(user=user, name=name, confirmed=True)


def totp_code_verify(*, user, token: str) -> bool:
    """A fresh code of the user's confirmed device (a sensitive change asks for one even in a verified session): the
    device row locked while it is checked, so one code is accepted once; django-otp throttles failures per device."""
    token = (token or "").strip()
    with transaction.atomic():
        device = totp_device_confirmed(user=user)
        if device is None or not token:
            return False
        device = type(device).objects.select_for_update().get(pk=device.pk)
        return bool(device.verify_token(token))


class OneTimeCodeInput(forms.TextInput):
    """A code is used once: never written back into the page."""

    def format_value(self, value):
        return None


class TotpLoginFormMixin(forms.Form):
    """User name + password + code in one form, one message for every failure.

    `enrolment_allowed`: a user with no confirmed device logs in on the password alone (the portal then sends the
    session to enrolment and allows nothing else); when False (the admin) such a user cannot log in.
    """

    enrolment_allowed = False
    error_messages = {"invalid_login": LOGIN_ERROR, "inactive": LOGIN_ERROR}

    otp_token = forms.CharField(
        label="Code", required=False, max_length=8,
        widget=OneTimeCodeInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self):
        try:
            super().clean()  # authenticate(): django-axes refuses a locked-out client here, before hashing
        except forms.ValidationError:
            raise forms.ValidationError(LOGIN_ERROR, code="invalid_login") from None
        user = self.get_user()
        device = totp_device_confirmed(user=user)
        if device is None and self.enrolment_allowed and not user.is_staff:  # staff enrol by staff_totp_enrol only
            user.otp_device = None
            return self.cleaned_data
        token = (self.cleaned_data.get("otp_token") or "").strip()
        with transaction.atomic():  # the device row locked: one code is accepted once, even by two logins at a time
            if device is not None:
                device = type(device).objects.select_for_update().get(pk=device.pk)
            verified = device is not None and token and device.verify_token(token)
        if not verified:
            # Counted by django-axes like a wrong password: the code cannot be guessed more often than it.
            user_login_failed.send(sender=type(self), credentials={"username": self.cleaned_data.get("username")},
                                   request=self.request)
            self.user_cache = None
            raise forms.ValidationError(LOGIN_ERROR, code="invalid_login")
        user.otp_device = device  # django_otp.login() marks the session verified when auth.login() runs
        return self.cleaned_data


class TotpAuthenticationForm(TotpLoginFormMixin, AuthenticationForm):
    pass


class TotpAdminAuthenticationForm(TotpLoginFormMixin, AdminAuthenticationForm):
    pass
