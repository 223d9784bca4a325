"""What every portal page stands on: the verified session, the current merchant (the login's memberships, one chosen
in the session), the role's permission (merchants.permissions) and the test/live mode chosen in the session.

A page is a view wrapped in `portal_required(permission=...)`; inside it `request.portal_merchant`,
`request.portal_membership` and `request.portal_livemode` are set (and `portal_merchant(request)` /
`portal_livemode(request)` read them from anywhere).
"""
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse

from gateway import otp

from . import permissions
from .models import Membership, Merchant, Role

SESSION_MERCHANT = "portal_merchant"
SESSION_LIVEMODE = "portal_livemode"  # False (test mode) until the merchant switches to live


def memberships_of(user):
    return Membership.objects.filter(user=user, merchant__is_active=True).select_related("merchant").order_by(
        "created", "id")


def membership_current(request) -> Membership | None:
    """The membership of the merchant chosen in the session, else the login's first one (and the session remembers
    it). None when the login belongs to no active merchant."""
    cached = getattr(request, "portal_membership", None)
    if cached is not None:
        return cached
    chosen = request.session.get(SESSION_MERCHANT)
    memberships = memberships_of(request.user)
    membership = (memberships.filter(merchant_id=chosen).first() if chosen else None) or memberships.first()
    if membership is None:
        membership = _creator_as_owner(request.user)
    if membership is not None and chosen != membership.merchant_id:
        request.session[SESSION_MERCHANT] = membership.merchant_id
    return membership


def _creator_as_owner(user) -> Membership | None:
    """A merchant with no team yet (its `Merchant.user` set by hand: `merchant_create` and the migration write the
    owner's Membership) is owned by that login. Once the merchant has a team, only its Membership rows count, so a
    creator removed from the team stays out. Not saved: the team page lists Membership rows."""
    merchant = Merchant.objects.filter(user=user, is_active=True, memberships__isnull=True).first()
    return Membership(merchant=merchant, user=user, role=Role.OWNER) if merchant is not None else None


def portal_livemode(request) -> bool:
    """The mode the portal shows: only objects of this mode are listed (test until switched to live)."""
    return bool(request.session.get(SESSION_LIVEMODE, False))


def portal_merchant(request):
    """The current merchant of a portal request (404 for a login that belongs to none)."""
    merchant = getattr(request, "portal_merchant", None)
    if merchant is not None:
        return merchant
    membership = membership_current(request) if request.user.is_authenticated else None
    if membership is None:
        raise Http404("This login has no merchant account.")
    return membership.merchant


def portal_required(view=None, *, permission: str = permissions.DEFAULT):
    """A session verified by a TOTP code, a membership of the current merchant, and a role that has `permission`
    (403 otherwise). A login without a confirmed device yet is sent to enrolment (and nothing else opens until it
    is done); a password-only session of a user who has a device goes back to the login.

    Used bare (`@portal_required`) or with a permission (`@portal_required(permission="payments.view")`); the
    permission is kept on the view (`portal_permission`) for the nav and the permission-matrix test."""
    permissions.permission_check(permission)
    if view is None:
        return lambda v: portal_required(v, permission=permission)

    @wraps(view)
    def guarded(request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and not user.is_verified() and otp.totp_device_confirmed(user=user) is None:
            return redirect("portal:two-factor")
        if not (user.is_authenticated and user.is_verified()):
            return redirect_to_login(request.get_full_path(), reverse("portal:login"))
        membership = membership_current(request)
        if membership is None:
            raise Http404("This login has no merchant account.")
        if not permissions.role_can(membership.role, permission):
            raise PermissionDenied(f"Your role ({membership.get_role_display()}) cannot do this.")
        request.portal_membership = membership
        request.portal_merchant = membership.merchant
        request.portal_livemode = portal_livemode(request)
        return view(request, *args, **kwargs)

    guarded.portal_permission = permission
    return guarded
