"""The permission matrix, walked: every page and action of the portal namespace x every role x an object of the
member's own merchant and one of another merchant -> allowed, 403 or 404 exactly as merchants.permissions says.

Data-driven: the routes are read from the URL resolver and each view's permission from `portal_required`
(`view.portal_permission`), so pages added to the `portal:` namespace join the walk by themselves. A page whose URL
takes an object id needs an entry in OBJECTS (how to make one for a merchant, given the URL's earlier ids); a page
that needs a login and is not guarded by `portal_required` fails the walk."""
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from merchants import permissions, services
from merchants.models import Membership, Role
from tests.otp import login_verified

# Pages open before a login (they need no role).
PUBLIC = {"login", "logout", "two-factor", "signup", "signup-verify", "invitation-accept", "password-reset",
          "password-reset-done", "password-reset-confirm", "password-reset-complete"}


def _user(email):
    return get_user_model().objects.create_user(username=email, email=email, password="x" * 12)


def _member(merchant):
    count = Membership.objects.count()
    user = _user(f"member{count}-{merchant.pk.lower()}@example.com")
    return Membership.objects.create(merchant=merchant, user=user, role=Role.VIEWER).pk


def _invitation(merchant):
    owner = Membership.objects.filter(merchant=merchant, role=Role.OWNER).first()
    return services.invitation_create(merchant=merchant, email=f"inv{Membership.objects.count()}@example.com",
                                      role=Role.VIEWER, invited_by=owner.user, by_role=Role.OWNER).invitation.pk


# URL keyword -> a fresh object of the given merchant (its id as the URL takes it).
def _intent(merchant, made):
    from tests.payments.portal import make_intent  # the payments pages are payments'

    return make_intent(merchant).id


def _endpoint(merchant, made):
    from tests.payments.test_portal_developers import endpoint_of

    return endpoint_of(merchant).id


def _event(merchant, made):
    from tests.payments.portal import make_event

    return make_event(merchant).id


def _delivery(merchant, made):
    from merchants.models import WebhookEndpoint
    from payments.models import Event
    from tests.payments.portal import make_delivery

    return make_delivery(WebhookEndpoint.objects.get(id=made["endpoint_id"]),
                         Event.objects.get(id=_event(merchant, made))).pk


def _payout_address(merchant, made):
    from tests.settlements.payout_fixtures import usable_address  # the payout pages are settlements'

    return usable_address(merchant).pk


def _payout(merchant, made):
    from tests.settlements.portal_money import make_payout

    return make_payout(merchant).pk


def _refund(merchant, made):
    from tests.settlements.portal_money import make_refund

    return make_refund(merchant).pk


def _deposit(merchant, made):
    from tests.payments.portal import make_intent, make_unmatched

    return make_unmatched(make_intent(merchant, address=True)).pk


OBJECTS = {
    "key_id": lambda merchant, made: services.api_key_create(merchant=merchant).api_key.pk,
    "address_id": _payout_address,
    "member_id": lambda merchant, made: _member(merchant),
    "invitation_id": lambda merchant, made: _invitation(merchant),
    "intent_id": _intent,
    "endpoint_id": _endpoint,  # before delivery_id in a URL: a delivery is made for the endpoint made for the URL
    "delivery_id": _delivery,
    "event_id": _event,
    "payout_id": _payout,
    "refund_id": _refund,
    "deposit_id": _deposit,
}

# POST data an action needs to do what it is for (default: none, so a form error is the allowed answer).
DATA = {
    "switch": lambda own: {"merchant": own.pk},
}


def _flatten(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _flatten(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield entry


def portal_routes() -> list[URLPattern]:
    _, resolver = get_resolver().namespace_dict["portal"]
    return [p for p in _flatten(resolver.url_patterns) if p.name]


def _route_id(pattern):
    return pattern.name


@pytest.fixture
def team(db, networks):
    """Our merchant with one member of each role (each with a verified session), and another merchant."""
    own = services.merchant_create(email="own@example.com", name="Own", password="pw-own-0123456")
    other = services.merchant_create(email="other@example.com", name="Other", password="pw-other-0123456")
    clients = {}
    for role in Role.values:
        user = own.user if role == Role.OWNER else _user(f"{role}@example.com")
        if role != Role.OWNER:
            Membership.objects.create(merchant=own, user=user, role=role)
        client = Client()
        login_verified(client, user)
        clients[role] = client
    return own, other, clients


def _request(client, path, data):
    response = client.get(path)
    if response.status_code == 405:
        response = client.post(path, data)
    return response


def test_every_portal_route_is_guarded_or_public():
    unguarded = [p.name for p in portal_routes()
                 if p.name not in PUBLIC and not hasattr(p.callback, "portal_permission")]
    assert not unguarded, f"portal pages without portal_required(permission=...): {unguarded}"


def test_every_permission_in_the_matrix_names_known_roles():
    assert set().union(*permissions.MATRIX.values()) <= set(Role.values)
    assert Role.OWNER in permissions.MATRIX["team.write"]
    for name in permissions.API_SCOPES:
        assert name in permissions.MATRIX


@pytest.mark.parametrize("route", [p for p in portal_routes() if p.name not in PUBLIC], ids=_route_id)
def test_route_x_role_x_merchant_follows_the_matrix(team, route):
    own, other, clients = team
    permission = route.callback.portal_permission
    keywords = list(route.pattern.regex.groupindex)
    missing = [k for k in keywords if k not in OBJECTS]
    assert not missing, f"add a factory for {missing} to OBJECTS so that {route.name} is walked"
    for role, client in clients.items():
        allowed = role in permissions.MATRIX[permission]
        data = DATA.get(route.name, lambda _: {})(own)
        for merchant in ([own, other] if keywords else [own]):
            kwargs = {}
            for k in keywords:  # in the URL's order; a factory sees what the URL's earlier ones made
                kwargs[k] = OBJECTS[k](merchant, kwargs)
            path = reverse(f"portal:{route.name}", kwargs=kwargs)
            status = _request(client, path, data).status_code
            if not allowed:
                expected = "403"
            elif merchant is other:
                expected = "404"
            else:
                expected = "allowed"
            got = "403" if status == 403 else "404" if status == 404 else (
                "allowed" if status < 500 else f"error {status}")
            assert got == expected, f"{route.name} as {role} on {merchant.name}'s object: {status}, want {expected}"



def test_docs_portal_md_shows_the_matrix_as_it_is():
    from pathlib import Path

    from django.conf import settings

    text = (Path(settings.BASE_DIR) / "docs" / "portal.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(Role.values) + 2 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = {r for r, c in zip(Role.values, cells[1:]) if c == "✓"}
    assert rows == {name: set(roles) for name, roles in permissions.MATRIX.items()}
