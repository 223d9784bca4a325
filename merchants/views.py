"""The merchant portal: two-factor login (django-otp TOTP), API keys, two-factor set-up."""
import base64
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
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import selectors, services
from .forms import ApiKeyCreateForm, PortalLoginForm, TotpConfirmForm


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


@portal_required
def dashboard(request):
    merchant = _merchant(request)
    return render(request, "portal/dashboard.html", {
        "merchant": merchant,
        "keys": selectors.api_keys_for_merchant(merchant=merchant).filter(expires_at__isnull=True),
        "has_2fa": TOTPDevice.objects.filter(user=request.user, confirmed=True).exists(),
        "key_form": ApiKeyCreateForm(),
    })


@portal_required
@require_POST
def api_key_create(request):
    merchant = _merchant(request)
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return render(request, "portal/dashboard.html", {
            "merchant": merchant, "key_form": form,
            "keys": selectors.api_keys_for_merchant(merchant=merchant).filter(expires_at__isnull=True),
        }, status=400)
    issued = services.api_key_create(
        merchant=merchant, kind=form.cleaned_data["kind"], livemode=form.cleaned_data["mode"] == "live",
        name=form.cleaned_data["name"],
    )
    return render(request, "portal/key_created.html", {"merchant": merchant, "raw": issued.raw, "key": issued.api_key})


@portal_required
@require_POST
def api_key_revoke(request, key_id):
    merchant = _merchant(request)
    key = selectors.api_keys_for_merchant(merchant=merchant).filter(pk=key_id).first()
    if key is None:
        raise Http404
    services.api_key_revoke(api_key=key)
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
