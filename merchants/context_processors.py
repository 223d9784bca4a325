"""The portal layout's context (templates/portal/base.html): the nav, the merchant switcher, the test/live mode.

A nav link shows when its page exists (its path resolves: pages of other apps join the nav as they are mounted)
and the member's role has the permission its view needs."""
from django.urls import Resolver404, resolve

from . import permissions
from .models import Role
from .portal import memberships_of, portal_livemode

# (label, path, section): the portal's pages in nav order.
NAV = [
    ("Home", "/portal/", "home"),
    ("Payments", "/portal/payments/", "payments"),
    ("Developers", "/portal/developers/", "developers"),
    ("Webhooks", "/portal/webhooks/", "developers"),
    ("Events", "/portal/events/", "developers"),
    ("Unmatched deposits", "/portal/unmatched-deposits/", "payments"),
    ("Refunds", "/portal/refunds/", "refunds"),
    ("Balance", "/portal/balance/", "balance"),
    ("Payouts", "/portal/payouts/", "payouts"),
    ("Payout addresses", "/portal/payout-addresses/", "payouts"),
    ("Settings", "/portal/settings/", "settings"),
    ("Team", "/portal/team/", "team"),
]


def _nav(role: str, current_path: str) -> list[dict]:
    items = []
    for label, path, section in NAV:
        try:
            match = resolve(path)
        except Resolver404:
            continue
        needed = getattr(match.func, "portal_permission", permissions.DEFAULT)
        if not permissions.role_can(role, needed):
            continue
        here = current_path == path if path == "/portal/" else current_path.startswith(path)
        items.append({"label": label, "path": path, "section": section, "current": here})
    return items


def portal(request):
    membership = getattr(request, "portal_membership", None)
    if membership is None:
        return {}
    return {
        "portal": {
            "merchant": membership.merchant,
            "role": membership.role,
            "role_label": Role(membership.role).label,
            "perms": permissions.role_permissions(membership.role),
            "livemode": portal_livemode(request),
            "nav": _nav(membership.role, request.path),
            "memberships": list(memberships_of(request.user)) if request.user.is_authenticated else [],
        }
    }
