"""Security headers: CSP on the portal and admin pages (django-csp; the checkout keeps its own), `Cache-Control:
no-store` on every /v1 answer and on every page that shows a secret."""
import re

import pytest

from django.test import Client

from merchants import services
from tests.otp import login_verified

pytestmark = pytest.mark.usefixtures("networks", "wallet")


@pytest.fixture
def shop(db):
    return services.merchant_create(email="shop@example.com", name="Shop", password="correct horse battery staple")


@pytest.fixture
def portal(client, shop):
    """A session verified by a TOTP code, as every portal page but the enrolment needs."""
    login_verified(client, shop.user)
    return client


@pytest.fixture
def enrolling(db):
    """A first login: password only, no device yet, so the enrolment page shows a new TOTP secret."""
    newcomer = services.merchant_create(email="new@example.com", name="New", password="correct horse battery staple")
    client = Client()
    client.force_login(newcomer.user)
    return client


def csp(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part for part in (p.strip() for p in header.split(";")) if part}


def assert_strict_csp(response):
    policy = csp(response)
    assert policy["default-src"] == "default-src 'self'"
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert policy["frame-ancestors"] == "frame-ancestors 'none'" and policy["object-src"] == "object-src 'none'"
    return policy


def assert_inline_styles_carry_the_nonce(response):
    """Every inline <style>/<script> carries the header's nonce, and no element has a style="" attribute (which a
    nonce cannot allow)."""
    html = response.content.decode()
    nonces = set(re.findall(r"'nonce-([^']+)'", response["Content-Security-Policy"]))
    for tag, attributes in re.findall(r"<(style|script)\b([^>]*)>", html):
        if tag == "script" and "src=" in attributes:
            continue
        assert re.search(r'nonce="([^"]+)"', attributes).group(1) in nonces, (tag, attributes)
    assert not re.search(r"<[^>]+\sstyle=", html)


@pytest.mark.parametrize("path", ["/portal/login/"])
def test_portal_pages_without_a_login_have_a_strict_csp(client, db, path):
    response = client.get(path)
    assert response.status_code == 200
    assert_strict_csp(response)
    assert_inline_styles_carry_the_nonce(response)


@pytest.mark.parametrize("session, path", [("portal", "/portal/"), ("enrolling", "/portal/two-factor/")])
def test_portal_pages_have_a_strict_csp_with_a_nonce_for_their_styles(request, session, path):
    response = request.getfixturevalue(session).get(path)
    assert response.status_code == 200
    policy = assert_strict_csp(response)
    assert re.fullmatch(r"style-src 'self' 'nonce-[A-Za-z0-9+/=]+'", policy["style-src"])
    assert_inline_styles_carry_the_nonce(response)


@pytest.mark.parametrize("path", ["/admin/login/", "/admin/", "/admin/payments/paymentintent/",
                                  "/admin/merchants/merchant/add/"])
def test_admin_pages_have_a_strict_csp(admin_client, path):
    response = (Client() if path == "/admin/login/" else admin_client).get(path)
    assert response.status_code == 200
    assert_strict_csp(response)


def test_the_checkout_keeps_its_own_policy(client, merchant):
    response = client.get("/pay/pi_unknown_secret_x")
    assert response.status_code == 404
    assert "connect-src 'self'" in response["Content-Security-Policy"]
    assert "script-src 'self';" in response["Content-Security-Policy"]  # its script is a static file: no inline one
    assert re.search(r"style-src 'self' 'nonce-[\w-]+'", response["Content-Security-Policy"])


def test_every_api_answer_is_no_store(api, anon):
    for response in (
        api.get("/v1/payment_intents"),
        api.post("/v1/payment_intents", {"amount": "1234", "currency": "usd"}),
        api.post("/v1/payment_intents", {"amount": "-1", "currency": "usd"}),
        api.get("/v1/payment_intents/pi_missing"),
        api.get("/v1/no_such_route"),
        anon.get("/v1/payment_intents"),
    ):
        assert response["Cache-Control"] == "no-store", (response.status_code, response.content)


def test_the_webhook_secret_is_never_stored(api):
    response = api.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hooks", "enabled_events[]": "*"})
    assert response.status_code == 200 and response.json()["secret"].startswith("whsec_")
    assert response["Cache-Control"] == "no-store"


def no_store(response) -> bool:
    return "no-store" in response["Cache-Control"]


def test_pages_showing_a_secret_are_never_stored(portal, enrolling):
    created = portal.post("/portal/keys/", {"kind": "secret", "mode": "test", "name": "server"})
    assert created.status_code == 200 and created.context["raw"].encode() in created.content
    assert no_store(created)

    key = created.context["key"]
    rolled = portal.post(f"/portal/keys/{key.id}/roll", {"expires_in_hours": "0"})
    assert rolled.status_code == 200 and no_store(rolled)

    enrolment = enrolling.get("/portal/two-factor/")
    assert enrolment.status_code == 200 and enrolment.context["secret"].encode() in enrolment.content
    assert no_store(enrolment)
