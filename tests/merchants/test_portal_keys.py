"""The portal's API keys page: last used, a copy button (a static script, no inline one), revoke with a
confirmation."""
import pytest
from rest_framework.test import APIClient

from merchants import authentication, services
from merchants.models import ApiKey
from tests.otp import login_verified

PASSWORD = "correct horse battery staple"


@pytest.fixture
def shop(db, client):
    shop = services.merchant_create(email="shop@example.com", name="Shop", password=PASSWORD)
    login_verified(client, shop.user)
    return shop


@pytest.fixture(autouse=True)
def fresh_marks():
    authentication._marked.clear()
    yield
    authentication._marked.clear()


def test_last_used_is_recorded_at_most_once_a_minute_and_shown(client, shop):
    issued = services.api_key_create(merchant=shop)
    assert b"never" in client.get("/portal/developers/").content
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    assert api.get("/v1/payment_intents").status_code == 200
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.last_used is not None
    first = key.last_used
    assert api.get("/v1/payment_intents").status_code == 200
    key.refresh_from_db()
    assert key.last_used == first  # within the minute: not written again
    assert first.strftime("%Y-%m-%d %H:%M").encode() in client.get("/portal/developers/").content


def test_mark_used_writes_only_an_older_value(shop):
    from datetime import timedelta

    from django.utils import timezone

    key = services.api_key_create(merchant=shop).api_key
    now = timezone.now()
    assert services.api_key_mark_used(key_id=key.id, now=now)
    assert not services.api_key_mark_used(key_id=key.id, now=now + timedelta(seconds=30))
    assert services.api_key_mark_used(key_id=key.id, now=now + timedelta(minutes=2))


def test_the_new_key_has_a_copy_button_with_a_static_script(client, shop):
    response = client.post("/portal/keys/", {"kind": "secret", "mode": "test", "name": "srv"})
    html = response.content.decode()
    assert 'data-copy="raw-key"' in html and 'src="/static/portal/copy.js"' in html
    assert "<script>" not in html  # no inline script: the CSP allows none without a nonce


def test_revoke_asks_first(client, shop):
    key = services.api_key_create(merchant=shop).api_key
    confirm = client.get(f"/portal/keys/{key.id}/revoke")
    assert confirm.status_code == 200 and b"Revoke this key?" in confirm.content
    key.refresh_from_db()
    assert key.expires_at is None
    assert client.post(f"/portal/keys/{key.id}/revoke").status_code == 302
    key.refresh_from_db()
    assert key.expires_at is not None


def test_another_merchants_key_has_no_confirmation_page(client, shop):
    other = services.merchant_create(email="other@example.com", password=PASSWORD)
    key = services.api_key_create(merchant=other).api_key
    assert client.get(f"/portal/keys/{key.id}/revoke").status_code == 404
