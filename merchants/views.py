"""The merchant portal: two-factor login (django-otp TOTP), API keys, two-factor set-up."""
import base64
from datetime import timedelta
from io import BytesIO

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.decorators import otp_required

from gateway.errors import DomainError

from . import selectors, services
from .forms import ApiKeyCreateForm, ApiKeyRollForm, PortalLoginForm, TotpConfirmForm
from .models import EncryptedTotpDevice as TOTPDevice  # the seed encrypted at rest


def portal_required(view):
    """A logged-in merchant user who passed two-factor if they have set it up."""
    return login_required(otp_required(if_configured=True, login_url=reverse_lazy("portal:login"))(view))


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = PortalLoginForm
    redirect_authenticated_user = False


def _merchant(request):
    merchant = getattr(request.user, "merchant", None)
    if merchant is None:
        raise Http404("This login has no merchant account.")
    return merchant


def _dashboard(request, merchant, *, key_form=None, roll_form=None, status=200):
    return render(request, "portal/dashboard.html", {
        "merchant": merchant,
        "keys": selectors.api_keys_usable_for_merchant(merchant=merchant),
        "has_2fa": TOTPDevice.objects.filter(user=request.user, confirmed=True).exists(),
        "key_form": key_form if key_form is not None else ApiKeyCreateForm(),
        "roll_form": roll_form if roll_form is not None else ApiKeyRollForm(auto_id=False),
    }, status=status)


def _key(merchant, key_id):
    key = selectors.api_key_for_merchant(merchant=merchant, key_id=key_id)
    if key is None:
        raise Http404
    return key


@portal_required
def dashboard(request):
    return _dashboard(request, _merchant(request))


@portal_required
@require_POST
def api_key_create(request):
    merchant = _merchant(request)
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _dashboard(request, merchant, key_form=form, status=400)
    issued = services.api_key_create(
        merchant=merchant, kind=form.cleaned_data["kind"], livemode=form.cleaned_data["mode"] == "live",
        name=form.cleaned_data["name"],
    )
    return render(request, "portal/key_created.html", {"merchant": merchant, "raw": issued.raw, "key": issued.api_key})


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
            issued = services.api_key_roll(api_key=key, grace=timedelta(hours=form.cleaned_data["expires_in_hours"]))
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
    key = services.api_key_revoke(api_key=_key(merchant, key_id))
    messages.success(request, f"Key {key.redacted} revoked.")
    return redirect("portal:dashboard")


@login_required(login_url=reverse_lazy("portal:login"))
def two_factor_setup(request):
    """Add a TOTP device: show its QR code, confirm it with one code, then the session counts as verified."""
    _merchant(request)
    device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first()
    if device is None:
        if TOTPDevice.objects.filter(user=request.user, confirmed=True).exists():
            messages.info(request, "Two-factor authentication is already on.")
            return redirect("portal:dashboard")
        device = TOTPDevice.objects.create(user=request.user, name="Authenticator app", confirmed=False)
    form = TotpConfirmForm(request.POST or None, device=device)
    if request.method == "POST" and form.is_valid():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
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
