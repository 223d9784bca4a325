"""The merchant portal's own pages: login with password and TOTP code (gateway.otp), TOTP enrolment at the first
login, sign-up with email verification, password reset, invitations, the team, the test/live switch, the merchant
switcher and API keys. Every page but those before a login needs a session verified by a code and a role with the
page's permission (merchants.portal, merchants.permissions)."""
import base64
from datetime import timedelta
from functools import wraps
from io import BytesIO

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from audit.services import audit_record
from gateway import otp
from gateway.errors import DomainError
from gateway.ratelimit import limit_per_ip
from gateway.ids import id_is_valid

from . import emails, permissions, selectors, services
from .forms import (
    ApiKeyCreateForm, ApiKeyRollForm, InvitationAcceptForm, InvitationCreateForm, LivemodeForm, MembershipRoleForm,
    MerchantSwitchForm, PortalLoginForm, SignupForm, TotpConfirmForm,
)
from .portal import SESSION_LIVEMODE, SESSION_MERCHANT, memberships_of, portal_livemode, portal_merchant, portal_required


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = PortalLoginForm
    redirect_authenticated_user = False

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "signup_enabled": settings.GATEWAY_PORTAL_SIGNUP}

    def get_success_url(self):
        if getattr(self.request.user, "otp_device", None) is None:
            return reverse("portal:two-factor")  # first login: enrol a device before anything else
        return super().get_success_url()


# The names the portal's pages use (merchants.portal).
_merchant = portal_merchant


def _dashboard(request, merchant, *, key_form=None, roll_form=None, status=200):
    livemode = portal_livemode(request)
    return render(request, "portal/dashboard.html", {
        "merchant": merchant,
        "keys": selectors.api_keys_usable_for_merchant(merchant=merchant).filter(livemode=livemode),
        "key_form": key_form if key_form is not None else ApiKeyCreateForm(initial={"mode": livemode and "live" or "test"}),
        "roll_form": roll_form if roll_form is not None else ApiKeyRollForm(auto_id=False),
    }, status=status)


def _key(merchant, key_id):
    if not id_is_valid(key_id, "key"):
        raise Http404
    key = selectors.api_key_for_merchant(merchant=merchant, key_id=key_id)
    if key is None:
        raise Http404
    return key


@portal_required(permission="keys.view")
def dashboard(request):
    """The API keys of the mode shown (Developers > API keys)."""
    return _dashboard(request, _merchant(request))


@never_cache  # the page shows the new raw key
@portal_required(permission="keys.write")
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
@portal_required(permission="keys.write")
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


@portal_required(permission="keys.write")
@require_http_methods(["GET", "POST"])
def api_key_revoke(request, key_id):
    """GET: the confirmation; POST: the key stops working now."""
    merchant = _merchant(request)
    key = _key(merchant, key_id)
    if request.method == "GET":
        return render(request, "portal/key_revoke.html", {"key": key})
    key = services.api_key_revoke(api_key=key, request=request)
    messages.success(request, f"Key {key.redacted} revoked.")
    return redirect("portal:dashboard")


@never_cache  # the page shows the TOTP secret
@login_required(login_url=reverse_lazy("portal:login"))
def two_factor_setup(request):
    """Enrolment (first login): show the new device's QR code, confirm it with one code, then the session counts
    as verified. Once a device is confirmed this page shows nothing (the seed is never shown again)."""
    _merchant(request)
    if otp.totp_device_confirmed(user=request.user) is not None:
        return redirect("portal:home")
    device = otp.totp_device_pending(user=request.user)
    form = TotpConfirmForm(request.POST or None, device=device)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            otp.totp_device_confirm(device=device)
            audit_record(action="totp_device.enrol", obj=device, after={"name": device.name, "confirmed": True},
                         request=request)
        otp_login(request, device)
        messages.success(request, "Two-factor authentication is on.")
        return redirect("portal:home")
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    return render(request, "portal/two_factor_setup.html", {
        "form": form, "qr_svg": buffer.getvalue().decode(),
        "secret": base64.b32encode(device.bin_key).decode(),
    })


def _back(request, default="portal:home"):
    """Where a small action (mode, merchant switch) returns: the page it was sent from, if it is one of ours."""
    target = request.POST.get("next", "")
    if target.startswith("/portal/") and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(default)


@portal_required
@require_POST
def livemode_switch(request):
    """The test/live switch: the portal shows only objects of the chosen mode (kept in the session)."""
    form = LivemodeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose test or live mode.")
        return _back(request)
    request.session[SESSION_LIVEMODE] = form.cleaned_data["livemode"]
    return _back(request)


@portal_required
@require_POST
def merchant_switch(request):
    """Another of the login's merchants becomes the current one (a 404 for a merchant it is not a member of)."""
    form = MerchantSwitchForm(request.POST)
    if not form.is_valid() or not memberships_of(request.user).filter(merchant_id=form.cleaned_data["merchant"]).exists():
        raise Http404
    request.session[SESSION_MERCHANT] = form.cleaned_data["merchant"]
    return redirect("portal:home")


# Team

def _team(request, *, invite_form=None, status=200):
    merchant = _merchant(request)
    role = request.portal_membership.role
    return render(request, "portal/team.html", {
        "merchant": merchant,
        "members": selectors.team_members(merchant=merchant),
        "invitations": selectors.invitations_pending(merchant=merchant),
        "invite_form": invite_form or InvitationCreateForm(),
        "grantable": permissions.role_grantable_by(role),
        "me": request.portal_membership,
        "matrix": [(name, [r in roles for r in permissions.Role.values]) for name, roles in permissions.MATRIX.items()],
        "roles": permissions.Role.choices,
    }, status=status)


@portal_required(permission="team.view")
def team(request):
    return _team(request)


@portal_required(permission="team.write")
@require_POST
def invitation_create(request):
    form = InvitationCreateForm(request.POST)
    if form.is_valid():
        try:
            issued = services.invitation_create(
                merchant=_merchant(request), email=form.cleaned_data["email"], role=form.cleaned_data["role"],
                invited_by=request.user, by_role=request.portal_membership.role, request=request,
            )
        except DomainError as exc:
            form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        else:
            messages.success(request, f"Invitation sent to {issued.invitation.email}.")
            return redirect("portal:team")
    return _team(request, invite_form=form, status=400)


@portal_required(permission="team.write")
@require_POST
def invitation_revoke(request, invitation_id):
    invitation = selectors.invitation_for_merchant(merchant=_merchant(request), invitation_id=invitation_id)
    if invitation is None:
        raise Http404
    services.invitation_revoke(invitation=invitation, actor=request.user, request=request)
    messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("portal:team")


def _member(request, member_id):
    membership = selectors.team_member(merchant=_merchant(request), member_id=member_id)
    if membership is None:
        raise Http404
    return membership


@portal_required(permission="team.write")
@require_POST
def member_role_change(request, member_id):
    membership = _member(request, member_id)
    form = MembershipRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
        return _team(request, status=400)
    try:
        services.membership_role_change(membership=membership, role=form.cleaned_data["role"],
                                        by_role=request.portal_membership.role, actor=request.user, request=request)
    except DomainError as exc:
        messages.error(request, exc.message)
        return _team(request, status=400)
    messages.success(request, f"{membership.user.email} is now {permissions.Role(form.cleaned_data['role']).label}.")
    return redirect("portal:team")


@portal_required(permission="team.write")
@require_POST
def member_remove(request, member_id):
    membership = _member(request, member_id)
    try:
        services.membership_remove(membership=membership, by_role=request.portal_membership.role,
                                   actor=request.user, request=request)
    except DomainError as exc:
        messages.error(request, exc.message)
        return _team(request, status=400)
    messages.success(request, f"{membership.user.email} was removed from the team.")
    if membership.user_id == request.user.id:
        request.session.pop(SESSION_MERCHANT, None)
        return redirect("portal:home")
    return redirect("portal:team")


# Before a login: invitations, sign-up, password reset

def mail_limited(view):
    """POSTs that send an email (sign-up, password reset) are limited per client IP
    (GATEWAY_RATE_LIMIT_PORTAL_MAIL_PER_IP): the portal is no tool to flood someone's mailbox."""
    limited = limit_per_ip("GATEWAY_RATE_LIMIT_PORTAL_MAIL_PER_IP", "portal-mail", json=False)(view)

    @wraps(view)
    def guarded(request, *args, **kwargs):
        return (limited if request.method == "POST" else view)(request, *args, **kwargs)

    return guarded


@never_cache
def invitation_accept(request, token):
    """The emailed link: join the team (a new login chooses a password here and enrols TOTP at its first login)."""
    invitation = selectors.invitation_by_token(token=token)
    if not services.invitation_usable(invitation):
        return render(request, "portal/invitation_invalid.html", status=404)
    existing = selectors.user_by_email(email=invitation.email)
    form = None if existing else InvitationAcceptForm(request.POST or None)
    if request.method == "POST" and (form is None or form.is_valid()):
        try:
            services.invitation_accept(token=token, password=form.cleaned_data["password2"] if form else None,
                                       request=request)
        except DomainError:
            return render(request, "portal/invitation_invalid.html", status=404)
        messages.success(request, f"You joined {invitation.merchant.name}. Log in to continue.")
        return redirect("portal:login")
    return render(request, "portal/invitation_accept.html", {"invitation": invitation, "form": form},
                  status=400 if form is not None and form.is_bound else 200)


def _signup_enabled():
    if not settings.GATEWAY_PORTAL_SIGNUP:
        raise Http404("Sign-up is off: ask the operator for an account.")


@never_cache
@mail_limited
def signup(request):
    _signup_enabled()
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.merchant_signup(email=form.cleaned_data["email"], name=form.cleaned_data["name"],
                                 password=form.cleaned_data["password2"], request=request)
        return render(request, "portal/signup_sent.html", {"email": form.cleaned_data["email"]})
    return render(request, "portal/signup.html", {"form": form}, status=400 if form.is_bound else 200)


def signup_verify(request, token):
    _signup_enabled()
    user_id = emails.signup_token_user_id(token)
    user = services.user_email_verify(user_id=user_id, request=request) if user_id is not None else None
    if user is None:
        return render(request, "portal/signup_invalid.html", status=404)
    messages.success(request, "Your email address is confirmed. Log in to set up two-factor authentication.")
    return redirect("portal:login")


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "portal/password_reset_form.html"
    email_template_name = "portal/password_reset_email.txt"
    subject_template_name = "portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password-reset-done")

    def form_valid(self, form):
        # The email's link is built from GATEWAY_PUBLIC_URL, never from the request's Host header.
        self.extra_email_context = {"portal_base": settings.GATEWAY_PUBLIC_URL}
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password-reset-complete")
