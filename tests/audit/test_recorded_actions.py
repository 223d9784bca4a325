"""Portal actions, API calls and operations commands each leave their audit record: who, what, from where."""
import json

import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditRecord
from merchants import services
from merchants.models import ApiKey, WebhookEndpoint
from tests.otp import login_verified

URL = "http://127.0.0.1:9/webhooks"  # test mode allows loopback; nothing is sent


def _records(action):
    return list(AuditRecord.objects.filter(action=action).order_by("seq"))


@pytest.fixture
def shop(db):
    return services.merchant_create(email="shop@example.com", name="Shop", password="correct horse battery staple")


def test_portal_key_create_roll_revoke_name_the_merchant_user(shop):
    client = Client()
    login_verified(client, shop.user)

    created = client.post("/portal/keys/", {"kind": "secret", "mode": "test", "name": "server"})
    key = ApiKey.objects.get(merchant=shop, name="server")
    client.post(f"/portal/keys/{key.id}/roll", {"expires_in_hours": "1"})
    new = ApiKey.objects.filter(merchant=shop, name="server").exclude(pk=key.pk).get()
    client.post(f"/portal/keys/{new.id}/revoke")

    create, = _records("api_key.create")
    roll, = _records("api_key.roll")
    revoke, = _records("api_key.revoke")
    assert (create.actor_type, create.actor_id, create.object_id) == ("merchant_user", str(shop.user.pk), key.id)
    assert create.request_id == created["Request-Id"] and create.ip == "127.0.0.1"
    assert create.after["key_hash"] == "[redacted]"
    assert roll.object_id == key.id and roll.after["replaced_by"] == new.id and roll.after["expires_at"]
    assert revoke.object_id == new.id and revoke.before == {"expires_at": None}


def test_api_webhook_endpoint_changes_name_the_key_and_never_store_the_secret(api, secret_key):
    created = api.post("/v1/webhook_endpoints", {"url": URL, "enabled_events[]": ["*"]})
    assert created.status_code == 200, created.content
    endpoint_id = created.json()["id"]
    api.post(f"/v1/webhook_endpoints/{endpoint_id}/roll_secret")
    api.delete(f"/v1/webhook_endpoints/{endpoint_id}")

    record, = _records("webhook_endpoint.create")
    key = ApiKey.objects.get(redacted__endswith=secret_key[-4:])
    assert (record.actor_type, record.actor_id, record.object_id) == ("api_key", key.id, endpoint_id)
    assert record.request_id == created["Request-Id"]
    assert record.after["secret"] == "[redacted]"
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    dumped = json.dumps([[r.before, r.after] for r in AuditRecord.objects.all()])
    assert endpoint.secret not in dumped and endpoint.previous_secret not in dumped
    assert [r.action for r in AuditRecord.objects.filter(object_id=endpoint_id).order_by("seq")] == [
        "webhook_endpoint.create", "webhook_endpoint.secret_roll", "webhook_endpoint.delete"]


def test_commands_are_recorded_as_the_system_with_the_command(shop, capsys):
    call_command("create_api_key", "--merchant", shop.id, "--json")
    key_id = json.loads(capsys.readouterr().out)["key_id"]
    call_command("roll_api_key", "--key-id", key_id, "--json")
    call_command("ledger", "rebuild")

    assert [(r.action, r.actor_id) for r in AuditRecord.objects.filter(actor_id__startswith="command:").order_by("seq")] == [
        ("api_key.create", "command:create_api_key"), ("api_key.roll", "command:roll_api_key"),
        ("ledger.rebuild", "command:ledger rebuild")]


def test_portal_login_and_logout_are_recorded(shop):
    from gateway import otp
    from tests.otp import totp_code, totp_device

    totp_device(shop.user)
    client = Client()
    response = client.post("/portal/login/", {"username": "shop@example.com", "password": "correct horse battery staple",
                                              "otp_token": totp_code(otp.totp_device_confirmed(user=shop.user))})
    assert response.status_code == 302
    client.post("/portal/logout/")

    login, = _records("auth.login")
    assert (login.actor_type, login.actor_id, login.request_id) == ("merchant_user", str(shop.user.pk),
                                                                    response["Request-Id"])
    assert [r.actor_id for r in _records("auth.logout")] == [str(shop.user.pk)]
