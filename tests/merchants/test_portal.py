"""The merchant portal: password + TOTP login, API keys shown once, every page scoped to its merchant."""
import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from merchants import services
from merchants.keys import hash_key
from merchants.models import ApiKey

PASSWORD = "correct horse battery staple"


@pytest.fixture
def shop(db):
    return services.merchant_create(email="shop@example.com", name="Shop", password=PASSWORD)


def login(client, token=""):
    return client.post("/portal/login/", {"username": "shop@example.com", "password": PASSWORD, "otp_token": token})


def code(device):
    return str(totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)).zfill(device.digits)


def test_pages_need_a_login(client):
    assert client.get("/portal/").status_code == 302


def test_login_without_two_factor_then_setting_it_up_makes_it_required(client, shop):
    assert login(client).status_code == 302
    assert client.get("/portal/").status_code == 200

    page = client.get("/portal/two-factor/")
    assert b"<svg" in page.content
    device = TOTPDevice.objects.get(user=shop.user)
    assert client.post("/portal/two-factor/", {"token": "000000"}).status_code == 200  # wrong code: form error
    device.refresh_from_db()
    device.throttle_reset()  # django-otp throttles the next try after a failure
    assert client.post("/portal/two-factor/", {"token": code(device)}).status_code == 302
    device.refresh_from_db()
    assert device.confirmed

    client.post("/portal/logout/")
    response = login(client)  # the password alone no longer opens the portal
    assert response.status_code == 200 and b"errorlist" in response.content
    device.refresh_from_db()
    device.last_t = -1
    device.save()
    response = login(client, code(device))
    assert response.status_code == 302, response.context["form"].errors
    assert client.get("/portal/").status_code == 200


def test_a_key_is_shown_once_and_stored_as_a_hash(client, shop):
    login(client)
    response = client.post("/portal/keys/", {"kind": "secret", "mode": "test", "name": "shop server"})
    raw = response.context["raw"]
    assert raw.startswith("sk_test_")
    key = ApiKey.objects.get(merchant=shop, name="shop server")
    assert key.key_hash == hash_key(raw)
    assert raw.encode() not in client.get("/portal/").content


def test_bad_key_form_names_the_field_and_writes_nothing(client, shop):
    login(client)
    response = client.post("/portal/keys/", {"kind": "root", "mode": "test"})
    assert response.status_code == 400 and "kind" in response.context["key_form"].errors
    assert not ApiKey.objects.exists()


def test_a_merchant_cannot_revoke_another_merchants_key(client, shop):
    other = services.merchant_create(email="other@example.com", password=PASSWORD)
    key = services.api_key_create(merchant=other).api_key
    login(client)
    assert client.post(f"/portal/keys/{key.id}/revoke").status_code == 404
    key.refresh_from_db()
    assert key.expires_at is None
    mine = services.api_key_create(merchant=shop).api_key
    assert client.post(f"/portal/keys/{mine.id}/revoke").status_code == 302
    mine.refresh_from_db()
    assert mine.expires_at is not None
