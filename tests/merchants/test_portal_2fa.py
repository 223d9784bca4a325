"""The portal's second factor and login throttling: a TOTP code for every session (enrolled at the first login),
one message for any failed login, django-axes lockouts per (email, client IP) that end after the cool-off."""
import time
from datetime import timedelta

import pytest
from django.test import Client

from gateway import otp
from gateway.otp import LOGIN_ERROR
from merchants import services
from merchants.models import ApiKey
from tests.otp import page_without_csrf, totp_code, totp_device

PASSWORD = "correct horse battery staple"
EMAIL = "shop@example.com"


@pytest.fixture
def newcomer(db):
    """A merchant login that has never logged in: no authenticator yet."""
    return services.merchant_create(email=EMAIL, name="Shop", password=PASSWORD)


@pytest.fixture
def shop(newcomer):
    totp_device(newcomer.user)
    return newcomer


def post_login(client, *, password=PASSWORD, code="", **extra):
    return client.post("/portal/login/", {"username": EMAIL, "password": password, "otp_token": code}, **extra)


def right_code(merchant):
    return totp_code(otp.totp_device_confirmed(user=merchant.user))


def test_the_first_login_lands_on_enrolment_and_nothing_else_opens_until_it_is_done(client, newcomer):
    response = post_login(client)
    assert response.status_code == 302 and response.url == "/portal/two-factor/"

    # Everything else leads back to enrolment and changes nothing
    assert client.get("/portal/").url == "/portal/two-factor/"
    refused = client.post("/portal/keys/", {"kind": "secret", "mode": "live", "name": "x"})
    assert refused.status_code == 302 and refused.url == "/portal/two-factor/"
    assert not ApiKey.objects.exists()

    page = client.get("/portal/two-factor/")
    assert page.status_code == 200 and b"<svg" in page.content
    device = otp.totp_device_model().objects.get(user=newcomer.user, confirmed=False)
    assert client.post("/portal/two-factor/", {"token": "000000"}).status_code == 200  # wrong code: form error
    device.refresh_from_db()
    assert not device.confirmed
    done = client.post("/portal/two-factor/", {"token": totp_code(device)})
    assert done.status_code == 302 and done.url == "/portal/"
    device.refresh_from_db()
    assert device.confirmed

    # The session is verified now; the seed is never shown again
    assert client.get("/portal/").status_code == 200
    again = client.get("/portal/two-factor/")
    assert again.status_code == 302 and again.url == "/portal/"
    created = client.post("/portal/keys/", {"kind": "secret", "mode": "live", "name": "live"})
    assert created.status_code == 200 and created.context["raw"].startswith("sk_live_")


def test_after_enrolment_the_password_alone_no_longer_logs_in(client, shop):
    response = post_login(client)

    assert response.status_code == 200 and LOGIN_ERROR in response.content.decode()
    assert client.get("/portal/").status_code == 302
    assert client.get("/portal/").url.startswith("/portal/login/")
    assert post_login(client, code=right_code(shop)).url == "/portal/"
    assert client.get("/portal/").status_code == 200


@pytest.mark.parametrize("action", ["create", "roll", "revoke"])
def test_a_password_only_session_cannot_touch_live_keys(shop, action):
    key = services.api_key_create(merchant=shop, livemode=True).api_key
    client = Client()
    client.force_login(shop.user)  # a password login, as before this change: no code given

    path, data = {
        "create": ("/portal/keys/", {"kind": "secret", "mode": "live", "name": "x"}),
        "roll": (f"/portal/keys/{key.id}/roll", {"expires_in_hours": "0"}),
        "revoke": (f"/portal/keys/{key.id}/revoke", {}),
    }[action]
    response = client.post(path, data)

    assert response.status_code == 302 and response.url.startswith("/portal/login/")
    key.refresh_from_db()
    assert key.expires_at is None and ApiKey.objects.count() == 1


def test_a_wrong_password_a_missing_code_and_a_wrong_code_get_the_same_answer(client, shop):
    wrong_password = post_login(client, password="wrong password", code=right_code(shop))
    missing_code = post_login(client)
    wrong_code = post_login(client, code="123456")

    pages = [page_without_csrf(r) for r in (wrong_password, missing_code, wrong_code)]
    assert [r.status_code for r in (wrong_password, missing_code, wrong_code)] == [200, 200, 200]
    assert LOGIN_ERROR in pages[0] and pages[0] == pages[1] == pages[2]
    assert client.get("/portal/").status_code == 302


def test_the_sixth_try_after_five_wrong_passwords_is_refused_even_with_the_right_ones(client, shop, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert post_login(client, password="guess").status_code == 200
    fifth = post_login(client, password="guess")
    assert fifth.status_code == 429

    sixth = post_login(client, code=right_code(shop))

    assert sixth.status_code == 429 and b"Too many login attempts" in sixth.content
    assert client.get("/portal/").status_code == 302  # not logged in
    # The lockout holds this address only: the merchant still logs in from another one
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert post_login(elsewhere, code=right_code(shop)).status_code == 302
    assert elsewhere.get("/portal/").status_code == 200


def test_wrong_codes_count_like_wrong_passwords(client, shop):
    for _ in range(5):
        post_login(client, code="000000")

    response = post_login(client, code=right_code(shop))

    assert response.status_code == 429 and client.get("/portal/").status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, shop, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    for _ in range(5):
        post_login(client, password="guess")
    assert post_login(client, code=right_code(shop)).status_code == 429

    deadline = time.monotonic() + 60  # generous: the machine may be loaded
    while (response := post_login(client, code=right_code(shop))).status_code == 429:
        assert time.monotonic() < deadline, "still locked out long after the cool-off"
        time.sleep(0.5)

    assert response.status_code == 302 and response.url == "/portal/"
    assert client.get("/portal/").status_code == 200


def test_behind_the_proxy_a_lockout_holds_the_guessers_address_not_everyones(shop, settings):
    # Given the gateway behind one TLS proxy: every request comes from its address, the client's in X-Forwarded-For
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    guesser = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    merchant = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")

    # When someone guesses the password five times
    for _ in range(5):
        post_login(guesser, password="guess")

    # Then that address is locked out, and the merchant, through the same proxy, still logs in
    assert post_login(guesser, code=right_code(shop)).status_code == 429
    assert post_login(merchant, code=right_code(shop)).status_code == 302
    assert merchant.get("/portal/").status_code == 200


def test_staff_never_log_in_to_the_portal_on_a_password_alone(client, newcomer):
    # Given a staff member linked to a merchant, with no device yet (staff enrol by `manage.py staff_totp_enrol`)
    newcomer.user.is_staff = True
    newcomer.user.save(update_fields=["is_staff"])

    response = post_login(client)

    assert response.status_code == 200 and LOGIN_ERROR in response.content.decode()
    assert client.get("/portal/two-factor/").status_code == 302  # no session to enrol from
    assert otp.totp_device_confirmed(user=newcomer.user) is None


def test_one_address_spraying_many_accounts_is_held_back_and_others_are_not(client, shop, rate_limits):
    # Given a limit of 4 failed logins per address, below django-axes' 5 per (account, address)
    rate_limits.GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_IP = "4/h"
    for other in ("a@example.com", "b@example.com"):
        services.merchant_create(email=other, name="Other", password="their password 1")

    # When one address tries one password on each account, twice
    for user in ("a@example.com", "b@example.com") * 2:
        response = client.post("/portal/login/", {"username": user, "password": "Summer2026!", "otp_token": ""})
        assert response.status_code == 200  # each a plain failure: no account reached its own lockout

    # Then its next try is refused before any password is checked, even with the right password and code
    refused = post_login(client, code=right_code(shop))
    assert refused.status_code == 429 and b"Too many failed sign-ins" in refused.content
    assert 1 <= int(refused["Retry-After"]) <= 3600 and refused["Cache-Control"] == "no-store"
    assert client.get("/portal/").status_code == 302
    assert client.get("/portal/login/").status_code == 200  # the page itself still opens
    # And the merchant, from another address, logs in as before
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert post_login(elsewhere, code=right_code(shop)).status_code == 302
