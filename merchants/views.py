"""The merchant portal: login with password and TOTP code (gateway.otp), TOTP enrolment at the first login, API
keys. Every page but enrolment needs a session verified by a code."""
import base64
from datetime import timedelta
from functools import wraps
from io import BytesIO

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from audit.services import audit_record
from gateway import otp
from gateway.errors import DomainError
from gateway.ids import id_is_valid

from . import selectors, services
from .forms import ApiKeyCreateForm, ApiKeyRollForm, PortalLoginForm, TotpConfirmForm


def portal_required(view):
    """A session verified by a TOTP code. A login without a confirmed device yet is sent to enrolment (and nothing
    else opens until it is done); a password-only session of a user who has a device goes back to the login."""
    @wraps(view)
    def guarded(request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and not user.is_verified() and otp.totp_device_confirmed(user=user) is None:
            return redirect("portal:two-factor")
        if not (user.is_authenticated and user.is_verified()):
            return redirect_to_login(request.get_full_path(), reverse("portal:login"))
        return view(request, *args, **kwargs)

    return guarded


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = PortalLoginForm
    redirect_authenticated_user = False

    def get_success_url(self):
        if getattr(self.request.user, "otp_device", None) is None:
            return reverse("portal:two-factor")  # first login: enrol a device before anything else
        return super().get_success_url()


def _merchant(request):
    merchant = getattr(request.user, "merchant", None)
    if merchant is None:
        raise Http404("This login has no merchant account.")
    return merchant


def _dashboard(request, merchant, *, key_form=None, roll_form=None, status=200):
    return render(request, "portal/dashboard.html", {
        "merchant": merchant,
        "keys": selectors.api_keys_usable_for_merchant(merchant=merchant),
        "key_form": key_form if key_form is not None else ApiKeyCreateForm(),
        "roll_form": roll_form if roll_form is not None else ApiKeyRollForm(auto_id=False),
    }, status=status)


def _key(merchant, key_id):
    if not id_is_valid(key_id, "key"):
        raise Http404
    key = selectors.api_key_for_merchant(merchant=merchant, key_id=key_id)
    if key is None:
        raise Http404
    return key


@portal_required
def dashboard(request):
    return _dashboard(request, _merchant(request))


@never_cache  # the page shows the new raw key
@portal_required
@require_POST
def api_key_create(request):
    merchant = _merchant(request)
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, merchant, key_form=form, status=400)
    issued = services.api_key_create(
        merchant=merchant, kind=form.cleaned_data["kind"], livemode=form.cleaned_data["mode"] == "live",
        name=form.cleaned_data["name"], request=request,
    )
    return render(request, "portal/key_created.html", {"merchant": merchant, "raw": issued.raw, "key": issued.api_key})


@never_cache  # the page shows the new raw key
@portal_required
@require_POST
def api_key_roll(request, key_id):
    """A new key in place of one of the merchant's keys, shown once; the old one expires now or after a grace
    period."""
    merchant = _merchant(request)
    key = _key(merchant, key_id)
    form = ApiKeyRollForm(request.POST, auto_id=False)
    if form.is_valid():
        try:
            issued = services.api_key_roll(api_key=key, grace=timedelta(hours=form.cleaned_data["expires_in_hours"]),
                                           request=request)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            key.refresh_from_db(fields=["expires_at"])
            return render(request, "portal/key_created.html", {
                "merchant": merchant, "raw": issued.raw, "key": issued.api_key, "rolled": key,
                "grace": form.cleaned_data["expires_in_hours"] > 0,
            })
    return _dashboard(request, merchant, roll_form=form, status=400)


@portal_required
@require_POST
def api_key_revoke(request, key_id):
    merchant = _merchant(request)
    key = services.api_key_revoke(api_key=_key(merchant, key_id), request=request)
    messages.success(request, f"Key {key.redacted} revoked.")
    return redirect("portal:dashboard")


@never_cache  # the page shows the TOTP secret
@login_required(login_url=reverse_lazy("portal:login"))
def two_factor_setup(request):
    """Enrolment (first login): show the new device's QR code, confirm it with one code, then the session counts
    as verified. Once a device is confirmed this page shows nothing (the seed is never shown again)."""
    _merchant(request)
    if otp.totp_device_confirmed(user=request.user) is not None:
        return redirect("portal:dashboard")
    device = otp.totp_device_pending(user=request.user)
    form = TotpConfirmForm(request.POST or None, device=device)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            otp.totp_device_confirm(device=device)
            audit_record(action="totp_device.enrol", obj=device, after={"name": device.name, "confirmed": True},
                         request=request)
        otp_login(request, device)
        messages.success(request, "Two-factor authentication is on.")
        return redirect("portal:dashboard")
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    return render(request, "portal/two_factor_setup.html", {
        "form": form, "qr_svg": buffer.getvalue().decode(),
        "secret": base64.b32encode(device.bin_key).decode(),
    })
