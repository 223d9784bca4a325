"""Application secrets encrypted at rest under GATEWAY_SECRETS_KEK (merchants.secrets, merchants.fields): webhook
signing secrets, TOTP seeds and the secrets of stored idempotent responses."""
import base64
import io
import json
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, override_settings
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from gateway import crypto
from gateway.errors import ConfigurationError
from merchants import secrets, selectors, services
from merchants.fields import SealedText
from merchants.models import EncryptedTotpDevice, IdempotencyRecord, SecretsKey, WebhookEndpoint
from tests.dbscan import database_dump, leaks
from tests.merchants.factories import MerchantFactory

KEK_TEST = b"s" * 32  # the test settings' GATEWAY_SECRETS_KEK
KEK_NEW = b"N" * 32
URL = "http://127.0.0.1:9/webhooks"
PASSWORD = "correct horse battery staple"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def sealed_key(device) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM merchants_encryptedtotpdevice WHERE id = %s", [device.pk])
        return cursor.fetchone()[0]


def stored(endpoint_id: str) -> tuple[str, str]:
    """The raw column values of an endpoint's secrets."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret, previous_secret FROM merchants_webhookendpoint WHERE id = %s", [endpoint_id])
        return cursor.fetchone()


def endpoint_create(merchant) -> WebhookEndpoint:
    return services.webhook_endpoint_create(
        merchant=merchant, livemode=False, url=URL, enabled_events=["payment_intent.succeeded"]
    )


def fresh(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """The row read again by a process that holds no key or secret yet."""
    secrets.secrets_cache_clear()
    return WebhookEndpoint.objects.get(pk=endpoint.pk)


def code(device) -> str:
    return str(totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)).zfill(device.digits)


@pytest.fixture(autouse=True)
def clear_secrets_cache():
    secrets.secrets_cache_clear()
    yield
    secrets.secrets_cache_clear()


# --- sealing --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seal_round_trip_names_its_data_key_and_hides_the_plaintext():
    sealed = secrets.secret_seal("whsec_abc", slot=b"t.c:1")
    again = secrets.secret_seal("whsec_abc", slot=b"t.c:1")
    key = SecretsKey.objects.get()
    assert sealed.startswith(f"v1:{key.id}:") and secrets.is_sealed(sealed)
    assert sealed != again  # a fresh nonce each time
    assert "whsec" not in sealed and key.kek_fingerprint == crypto.kek_fingerprint(KEK_TEST)
    assert secrets.secret_open(sealed, slot=b"t.c:1") == "whsec_abc"
    secrets.secrets_cache_clear()  # a new process: unwraps the data key from its row
    assert secrets.secret_open(again, slot=b"t.c:1") == "whsec_abc"


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["slot", "body", "key id", "clear"])
def test_open_refuses_another_slot_or_an_altered_value_without_showing_it(change):
    sealed = secrets.secret_seal("whsec_abc", slot=b"t.c:1")
    slot = b"t.c:1"
    if change == "slot":
        slot = b"t.c:2"
    elif change == "body":
        sealed = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    elif change == "key id":
        sealed = "v1:00000000:" + sealed.split(":", 2)[2]
    elif change == "clear":
        sealed = "whsec_abc"
    with pytest.raises(ConfigurationError) as exc:
        secrets.secret_open(sealed, slot=slot)
    assert exc.value.status_code == 503 and "whsec_abc" not in str(exc.value)
    assert exc.value.code in {"secret_decrypt_failed", "secrets_key_missing", "secret_not_sealed"}


@pytest.mark.django_db
def test_sealing_needs_the_secrets_kek_and_never_the_seeds():
    with override_settings(GATEWAY_SECRETS_KEK="", GATEWAY_KEK=b64(b"k" * 32)):
        with pytest.raises(ConfigurationError) as exc:
            secrets.secret_seal("whsec_abc", slot=b"t.c:1")
    assert exc.value.code == "kek_missing" and "GATEWAY_SECRETS_KEK" in exc.value.message
    assert not SecretsKey.objects.exists()
    with override_settings(GATEWAY_KEK=""):  # the web tier runs without the seed's KEK
        assert secrets.secret_open(secrets.secret_seal("x", slot=b"t.c:1"), slot=b"t.c:1") == "x"


# --- webhook endpoints ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_endpoint_secrets_are_sealed_in_their_columns_and_read_in_clear(merchant):
    endpoint = endpoint_create(merchant)
    secret = endpoint.secret
    assert secret.startswith("whsec_")
    column, previous_column = stored(endpoint.pk)
    assert secrets.is_sealed(column) and "whsec_" not in column and previous_column == ""
    assert fresh(endpoint).secret == secret

    rolled = services.webhook_endpoint_secret_roll(endpoint=endpoint)
    column, previous_column = stored(endpoint.pk)
    assert secrets.is_sealed(column) and secrets.is_sealed(previous_column)
    again = fresh(endpoint)
    assert again.secret == rolled.secret != secret and again.previous_secret == secret
    assert selectors.webhook_endpoint_signing_secrets(again, now=timezone.now()) == [rolled.secret, secret]


@pytest.mark.django_db
def test_a_sealed_secret_copied_to_another_row_or_column_does_not_decrypt(merchant):
    one, two = endpoint_create(merchant), endpoint_create(merchant)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE merchants_webhookendpoint SET secret = %s, previous_secret = %s WHERE id = %s",
                       [stored(one.pk)[0], stored(two.pk)[0], two.pk])
    copied = fresh(two)
    for name in ("secret", "previous_secret"):
        with pytest.raises(ConfigurationError) as exc:
            getattr(copied, name)
        assert exc.value.code == "secret_decrypt_failed" and two.pk in exc.value.message
    assert fresh(one).secret == one.secret


@pytest.mark.django_db
def test_a_secret_is_never_written_in_clear_by_an_update(merchant):
    endpoint = endpoint_create(merchant)
    before = stored(endpoint.pk)
    with pytest.raises(ValueError, match="sealed"), transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret="whsec_clear")
    assert stored(endpoint.pk) == before


# --- idempotent responses -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_replayed_create_or_roll_returns_its_secret_which_is_stored_sealed(api):
    first = api.post("/v1/webhook_endpoints", {"url": URL, "enabled_events[]": "*"}, HTTP_IDEMPOTENCY_KEY="c-1")
    endpoint_id, secret = first.json()["id"], first.json()["secret"]
    rolled = api.post(f"/v1/webhook_endpoints/{endpoint_id}/roll_secret", {}, HTTP_IDEMPOTENCY_KEY="r-1")
    assert rolled.status_code == 200 and rolled.json()["secret"] not in (secret, None)
    api.post(f"/v1/webhook_endpoints/{endpoint_id}/roll_secret", {})  # the endpoint moves on

    secrets.secrets_cache_clear()
    create_again = api.post("/v1/webhook_endpoints", {"url": URL, "enabled_events[]": "*"}, HTTP_IDEMPOTENCY_KEY="c-1")
    roll_again = api.post(f"/v1/webhook_endpoints/{endpoint_id}/roll_secret", {}, HTTP_IDEMPOTENCY_KEY="r-1")
    assert create_again.json() == first.json() and create_again["Idempotent-Replayed"] == "true"
    assert roll_again.json() == rolled.json() and roll_again["Idempotent-Replayed"] == "true"
    for key in ("c-1", "r-1"):
        body = IdempotencyRecord.objects.get(key=key).response_body
        assert secrets.is_sealed(body["secret"]) and body["id"] == endpoint_id
        assert "whsec_" not in json.dumps(body)
    assert WebhookEndpoint.objects.count() == 1


@pytest.mark.django_db
def test_a_stored_response_moved_to_another_key_does_not_replay_its_secret(api):
    api.post("/v1/webhook_endpoints", {"url": URL, "enabled_events[]": "*"}, HTTP_IDEMPOTENCY_KEY="c-1")
    original = IdempotencyRecord.objects.get(key="c-1")
    IdempotencyRecord.objects.filter(pk=original.pk).update(key="c-2")
    response = api.post("/v1/webhook_endpoints", {"url": URL, "enabled_events[]": "*"}, HTTP_IDEMPOTENCY_KEY="c-2")
    assert response.status_code == 503 and "whsec_" not in response.content.decode()
    assert WebhookEndpoint.objects.count() == 1


# --- TOTP devices ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_totp_device_verifies_with_its_seed_sealed_and_bound_to_its_user():
    user = get_user_model().objects.create_user(username="a@example.com", password=PASSWORD)
    other = get_user_model().objects.create_user(username="b@example.com", password=PASSWORD)
    device = EncryptedTotpDevice.objects.create(user=user, name="phone")
    hex_key = device.key
    column = sealed_key(device)
    assert secrets.is_sealed(column) and hex_key not in column and len(bytes.fromhex(hex_key)) == 20

    secrets.secrets_cache_clear()
    again = EncryptedTotpDevice.objects.get(pk=device.pk)
    assert again.verify_token("000000" if code(again) != "000000" else "111111") is False
    again.throttle_reset()
    assert again.verify_token(code(again)) is True
    again.refresh_from_db()
    assert again.key == hex_key and again.last_t > -1
    assert "secret=" in again.config_url

    stolen = EncryptedTotpDevice.objects.create(user=other, name="copy")
    EncryptedTotpDevice.objects.filter(pk=stolen.pk).update(key=SealedText(column))  # as stored
    secrets.secrets_cache_clear()
    with pytest.raises(ConfigurationError):
        EncryptedTotpDevice.objects.get(pk=stolen.pk).bin_key


@pytest.mark.django_db
def test_portal_enrolment_stores_the_seed_sealed_and_the_login_verifies_it(client: Client):
    shop = services.merchant_create(email="shop@example.com", name="Shop", password=PASSWORD)
    client.post("/portal/login/", {"username": "shop@example.com", "password": PASSWORD, "otp_token": ""})
    page = client.get("/portal/two-factor/")
    device = EncryptedTotpDevice.objects.get(user=shop.user)
    assert base64.b32encode(device.bin_key) in page.content  # shown for manual entry
    assert client.post("/portal/two-factor/", {"token": code(device)}).status_code == 302
    assert not TOTPDevice.objects.exists()  # django-otp's clear table stays empty

    client.post("/portal/logout/")
    device.refresh_from_db()
    device.last_t = -1  # the enrolment used this code already
    device.save()
    secrets.secrets_cache_clear()
    response = client.post("/portal/login/", {"username": "shop@example.com", "password": PASSWORD,
                                              "otp_token": code(device)})
    assert response.status_code == 302
    assert client.get("/portal/").status_code == 200


# --- no secret in any row -------------------------------------------------------------------------------------


def _needles(named: dict[str, bytes]) -> dict[str, bytes]:
    needles = {"whsec-prefix": b"whsec_"}
    for name, value in named.items():
        needles[name] = value
        needles[f"{name}-hex"] = value.hex().encode()
        needles[f"{name}-b64"] = base64.b64encode(value)
        needles[f"{name}-b32"] = base64.b32encode(value).rstrip(b"=")
    return needles


@pytest.mark.django_db
def test_no_webhook_secret_nor_totp_seed_in_any_database_row(api, merchant):
    created = api.post("/v1/webhook_endpoints", {"url": URL, "enabled_events[]": "*"}, HTTP_IDEMPOTENCY_KEY="c-1")
    endpoint_id = created.json()["id"]
    seen = {"created": created.json()["secret"]}
    seen["rolled-api"] = api.post(f"/v1/webhook_endpoints/{endpoint_id}/roll_secret", {},
                                  HTTP_IDEMPOTENCY_KEY="r-1").json()["secret"]
    out = io.StringIO()
    call_command("roll_webhook_secret", "--endpoint", endpoint_id, "--json", stdout=out)
    seen["rolled-command"] = json.loads(out.getvalue())["secret"]
    other = endpoint_create(MerchantFactory())
    seen["other"] = other.secret

    client = Client()
    shop = services.merchant_create(email="shop@example.com", name="Shop", password=PASSWORD)
    client.post("/portal/login/", {"username": "shop@example.com", "password": PASSWORD, "otp_token": ""})
    client.get("/portal/two-factor/")
    device = EncryptedTotpDevice.objects.get(user=shop.user)
    assert client.post("/portal/two-factor/", {"token": code(device)}).status_code == 302

    key = SecretsKey.objects.get()
    named = {name: value.encode() for name, value in seen.items()}
    named.update({name + "-token": value.removeprefix("whsec_").encode() for name, value in seen.items()})
    named.update({"totp-seed": device.bin_key, "totp-seed-hex-text": device.key.encode(),
                  "data-key": secrets._data_key(key.id), "secrets-kek": KEK_TEST})
    dump = database_dump()
    # The scan reads the rows that hold the sealed values (positive controls) ...
    assert stored(endpoint_id)[0].encode() in dump["merchants_webhookendpoint"]
    assert sealed_key(device).encode() in dump["merchants_encryptedtotpdevice"]
    assert bytes(key.wrapped_dek) in dump["merchants_secretskey"]
    assert IdempotencyRecord.objects.count() == 2
    # ... and finds no secret anywhere.
    assert leaks(b"\n".join(dump.values()), _needles(named)) == []


# --- rotating the secrets KEK ---------------------------------------------------------------------------------


def _wait_for(condition, *, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_rotating_the_kek_while_others_read_and_afterwards_without_the_old_kek():
    endpoints = [endpoint_create(MerchantFactory()) for _ in range(3)]
    expected = {e.pk: e.secret for e in endpoints}
    wrapped_before = bytes(SecretsKey.objects.get().wrapped_dek)
    reads, errors, stop = [0], [], threading.Event()

    def reader():
        try:
            while not stop.is_set():
                secrets.secrets_cache_clear()  # unwrap the data key from its row on every round
                for endpoint in WebhookEndpoint.objects.filter(pk__in=list(expected)):
                    assert endpoint.secret == expected[endpoint.pk]
                reads[0] += 1
        except Exception as exc:  # noqa: BLE001  (reported by the test below)
            errors.append(exc)
        finally:
            connection.close()

    with override_settings(GATEWAY_SECRETS_KEK=b64(KEK_NEW), GATEWAY_SECRETS_KEK_PREVIOUS=[b64(KEK_TEST)]):
        threads = [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            _wait_for(lambda: reads[0] >= 5 or errors)
            out = io.StringIO()
            call_command("rotate_secrets_kek", "--json", stdout=out)
            after = reads[0]
            _wait_for(lambda: reads[0] >= after + 5 or errors)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
        assert errors == []
        result = json.loads(out.getvalue())
        key = SecretsKey.objects.get()
        assert result == {"kek_fingerprint": crypto.kek_fingerprint(KEK_NEW), "rewrapped": [key.id], "unchanged": []}
        assert key.kek_fingerprint == crypto.kek_fingerprint(KEK_NEW) and bytes(key.wrapped_dek) != wrapped_before
        assert key.rewrapped is not None

    with override_settings(GATEWAY_SECRETS_KEK=b64(KEK_NEW), GATEWAY_SECRETS_KEK_PREVIOUS=[]):
        for endpoint in endpoints:
            assert fresh(endpoint).secret == expected[endpoint.pk]
        out = io.StringIO()
        call_command("rotate_secrets_kek", "--json", stdout=out)  # a second run changes nothing
        assert json.loads(out.getvalue())["rewrapped"] == []
    with override_settings(GATEWAY_SECRETS_KEK=b64(KEK_TEST), GATEWAY_SECRETS_KEK_PREVIOUS=[]):
        with pytest.raises(ConfigurationError) as exc:  # the old KEK alone no longer opens anything
            fresh(endpoints[0]).secret
        assert exc.value.code == "kek_unknown" and "GATEWAY_SECRETS_KEK_PREVIOUS" in exc.value.message


@pytest.mark.django_db
def test_rotating_without_the_old_kek_is_refused_and_changes_nothing(merchant):
    endpoint = endpoint_create(merchant)
    before = SecretsKey.objects.get()
    with override_settings(GATEWAY_SECRETS_KEK=b64(KEK_NEW), GATEWAY_SECRETS_KEK_PREVIOUS=[]):
        with pytest.raises(CommandError) as exc:
            call_command("rotate_secrets_kek")
    assert "kek_unknown" in str(exc.value) and b64(KEK_TEST) not in str(exc.value)
    after = SecretsKey.objects.get()
    assert (bytes(after.wrapped_dek), after.kek_fingerprint) == (bytes(before.wrapped_dek), before.kek_fingerprint)
    assert fresh(endpoint).secret == endpoint.secret


# --- the migration of clear rows ------------------------------------------------------------------------------


def _migrate(*targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets))


def _latest() -> list[tuple[str, str]]:
    """Every app's last migration: going back to 0002 also unapplies the later migrations of other apps that depend
    on merchants, which the way forward must apply again."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_clear_secrets_and_moves_totp_devices_and_back():
    merchant = MerchantFactory()
    user = get_user_model().objects.create_user(username="a@example.com", password=PASSWORD)
    latest = _latest()
    _migrate(("merchants", "0002_webhook_endpoints"))
    try:
        now = timezone.now()
        with connection.cursor() as cursor:
            rows = [("we_clear1", "whsec_one", ""), ("we_clear2", "whsec_two", "whsec_old")]
            for endpoint_id, secret, previous in rows:
                cursor.execute(
                    "INSERT INTO merchants_webhookendpoint (id, merchant_id, livemode, url, description, metadata, "
                    "enabled_events, status, disabled_reason, secret, previous_secret, previous_secret_expires_at, "
                    "deleted, created, updated) VALUES (%s, %s, false, %s, '', '{}', '[\"*\"]', 'enabled', '', %s, %s, "
                    "%s, false, %s, %s)",
                    [endpoint_id, merchant.pk, URL, secret, previous, now if previous else None, now, now],
                )
        clear_device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True, last_t=-1)
        hex_key = clear_device.key

        _migrate(*latest)
        secrets.secrets_cache_clear()
        assert all(secrets.is_sealed(value) or value == "" for value in stored("we_clear1") + stored("we_clear2"))
        one, two = WebhookEndpoint.objects.get(pk="we_clear1"), WebhookEndpoint.objects.get(pk="we_clear2")
        assert (one.secret, one.previous_secret, two.secret, two.previous_secret) == (
            "whsec_one", "", "whsec_two", "whsec_old")
        assert not TOTPDevice.objects.exists()
        device = EncryptedTotpDevice.objects.get(user=user)
        assert device.key == hex_key and device.confirmed and device.name == "phone"
        assert device.created_at == clear_device.created_at
        assert device.verify_token(code(device)) is True
        assert "whsec_" not in str(stored("we_clear2")) and hex_key.encode() not in b"\n".join(database_dump().values())

        _migrate(("merchants", "0002_webhook_endpoints"))  # reversible: back in clear
        assert stored("we_clear2") == ("whsec_two", "whsec_old")
        assert TOTPDevice.objects.get(user=user).key == hex_key
    finally:
        _migrate(*latest)
