"""The merchant portal: password + TOTP login, API keys shown once, every page scoped to its merchant.
(Enrolment, the second factor and login throttling: test_portal_2fa.py.)"""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from gateway import otp
from merchants import services
from merchants.keys import hash_key
from merchants.models import ApiKey
from tests.otp import login_verified, totp_code, totp_device

PASSWORD = "correct horse battery staple"
KEYS = "/portal/developers/"  # the API keys page (of the mode the portal shows)


@pytest.fixture
def shop(db):
    shop = services.merchant_create(email="shop@example.com", name="Shop", password=PASSWORD)
    totp_device(shop.user)
    return shop


def login(client, shop):
    response = client.post("/portal/login/", {"username": "shop@example.com", "password": PASSWORD,
                                              "otp_token": totp_code(otp.totp_device_confirmed(user=shop.user))})
    assert response.status_code == 302 and response.url == "/portal/", response.content
    return response


def test_pages_need_a_login(client):
    assert client.get("/portal/").status_code == 302


def test_a_key_is_shown_once_and_stored_as_a_hash(client, shop):
    login(client, shop)
    response = client.post("/portal/keys/", {"kind": "secret", "mode": "test", "name": "shop server"})
    raw = response.context["raw"]
    assert raw.startswith("sk_test_")
    key = ApiKey.objects.get(merchant=shop, name="shop server")
    assert key.key_hash == hash_key(raw)
    assert raw.encode() not in client.get(KEYS).content


def test_bad_key_form_names_the_field_and_writes_nothing(client, shop):
    login(client, shop)
    response = client.post("/portal/keys/", {"kind": "root", "mode": "test"})
    assert response.status_code == 400 and "kind" in response.context["key_form"].errors
    assert not ApiKey.objects.exists()


def test_a_merchant_cannot_revoke_another_merchants_key(client, shop):
    other = services.merchant_create(email="other@example.com", password=PASSWORD)
    key = services.api_key_create(merchant=other).api_key
    login(client, shop)
    assert client.post(f"/portal/keys/{key.id}/revoke").status_code == 404
    key.refresh_from_db()
    assert key.expires_at is None
    mine = services.api_key_create(merchant=shop).api_key
    assert client.post(f"/portal/keys/{mine.id}/revoke").status_code == 302
    mine.refresh_from_db()
    assert mine.expires_at is not None


def test_rolling_a_key_shows_the_new_one_once_and_the_old_one_stops_at_once(client, shop, key_works):
    old_raw = services.api_key_create(merchant=shop, livemode=True, name="shop server").raw
    old = ApiKey.objects.get(key_hash=hash_key(old_raw))
    login(client, shop)
    client.post("/portal/mode/", {"livemode": "1"})  # the live key shows in live mode
    assert f'action="/portal/keys/{old.id}/roll"'.encode() in client.get(KEYS).content

    response = client.post(f"/portal/keys/{old.id}/roll", {"expires_in_hours": "0"})

    assert response.status_code == 200 and b"has stopped working" in response.content
    raw = response.context["raw"]
    new = ApiKey.objects.get(key_hash=hash_key(raw))
    assert (new.merchant, new.kind, new.livemode, new.name) == (shop, "secret", True, "shop server")
    assert key_works(raw) and not key_works(old_raw)
    page = client.get(KEYS).content
    assert raw.encode() not in page and new.redacted.encode() in page and old.redacted.encode() not in page


def test_a_rolled_key_with_a_grace_period_works_until_it_ends(client, shop, key_works, key_clock):
    old_raw = services.api_key_create(merchant=shop).raw
    old = ApiKey.objects.get(key_hash=hash_key(old_raw))
    login(client, shop)

    response = client.post(f"/portal/keys/{old.id}/roll", {"expires_in_hours": "24"})

    assert b"keeps working until" in response.content
    old.refresh_from_db()
    assert timezone.now() + timedelta(hours=23) < old.expires_at <= timezone.now() + timedelta(hours=24)
    assert old.redacted.encode() in client.get(KEYS).content  # listed, with its expiry, until it ends
    raw = response.context["raw"]
    assert key_works(old_raw) and key_works(raw)
    key_clock(old.expires_at + timedelta(seconds=1))
    assert not key_works(old_raw) and key_works(raw)


def test_a_merchant_cannot_roll_another_merchants_key(client, shop, key_works):
    other = services.merchant_create(email="other@example.com", password=PASSWORD)
    issued = services.api_key_create(merchant=other)
    login(client, shop)

    assert client.post(f"/portal/keys/{issued.api_key.id}/roll", {"expires_in_hours": "0"}).status_code == 404
    issued.api_key.refresh_from_db()
    assert issued.api_key.expires_at is None and ApiKey.objects.count() == 1 and key_works(issued.raw)


@pytest.mark.parametrize("data", [{"expires_in_hours": "abc"}, {"expires_in_hours": "9999"}, {}])
def test_a_bad_grace_period_is_a_form_error_and_changes_nothing(client, shop, data):
    key = services.api_key_create(merchant=shop).api_key
    login(client, shop)

    response = client.post(f"/portal/keys/{key.id}/roll", data)

    assert response.status_code == 400 and "expires_in_hours" in response.context["roll_form"].errors
    assert b"errorlist" in response.content
    key.refresh_from_db()
    assert key.expires_at is None and ApiKey.objects.count() == 1


def test_a_roll_submitted_twice_makes_one_new_key(client, shop):
    key = services.api_key_create(merchant=shop).api_key
    login(client, shop)

    assert client.post(f"/portal/keys/{key.id}/roll", {"expires_in_hours": "24"}).status_code == 200
    response = client.post(f"/portal/keys/{key.id}/roll", {"expires_in_hours": "24"})

    assert response.status_code == 400 and b"already rolled" in response.content
    assert ApiKey.objects.count() == 2


def test_an_expired_key_cannot_be_rolled(client, shop):
    key = services.api_key_revoke(api_key=services.api_key_create(merchant=shop).api_key)
    login(client, shop)

    response = client.post(f"/portal/keys/{key.id}/roll", {"expires_in_hours": "0"})

    assert response.status_code == 400 and b"cannot be rolled" in response.content
    assert ApiKey.objects.count() == 1


def test_rolling_needs_a_post_with_the_csrf_token(shop):
    key = services.api_key_create(merchant=shop).api_key
    client = Client(enforce_csrf_checks=True)
    login_verified(client, shop.user)

    assert client.get(f"/portal/keys/{key.id}/roll").status_code == 405
    assert client.post(f"/portal/keys/{key.id}/roll", {"expires_in_hours": "0"}).status_code == 403
    token = client.get(KEYS).context["csrf_token"]
    assert client.post(f"/portal/keys/{key.id}/roll", {"expires_in_hours": "0", "csrfmiddlewaretoken": token}
                       ).status_code == 200
    assert ApiKey.objects.count() == 2
