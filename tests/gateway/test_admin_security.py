"""The admin: a TOTP code at login (OTPAdminSite), no TOTP seed shown, facts never added, edited or deleted by hand,
chain data changed only with a reason and a confirmation that end up in the history, logins throttled."""
import base64
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory

from gateway import otp
from gateway.otp import LOGIN_ERROR
from merchants import services as merchant_services
from merchants.models import ApiKey
from payments.events import event_record
from payments.models import Charge, Event, PaymentIntent, UnmatchedDeposit, WebhookDelivery
from tests.otp import login_verified, page_without_csrf, totp_code, totp_device
from wallets.models import BalanceDiscrepancy, ChainCursor, DepositAddress, MasterSeed, Network, Token, Transfer

pytestmark = pytest.mark.django_db
PASSWORD = "staff password 1"


@pytest.fixture
def staff():
    return get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)


def admin_login(client, *, password=PASSWORD, code="", **extra):
    return client.post("/admin/login/?next=/admin/", {"username": "ops", "password": password, "otp_token": code},
                       **extra)


# Login


def test_staff_without_a_confirmed_device_cannot_get_in(client, staff):
    for code in ("", "123456"):
        response = admin_login(client, code=code)
        assert response.status_code == 200 and LOGIN_ERROR in response.content.decode()
    assert client.get("/admin/").status_code == 302

    password_only = Client()
    password_only.force_login(staff)  # a session without a code, as the plain admin gave
    response = password_only.get("/admin/payments/paymentintent/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")


def test_staff_get_in_with_password_and_code(client, staff):
    device = totp_device(staff)

    response = admin_login(client, code=totp_code(device))

    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_wrong_password_and_a_missing_or_wrong_code_get_the_same_answer(client, staff):
    device = totp_device(staff)

    answers = [admin_login(client, password="wrong", code=totp_code(device)), admin_login(client),
               admin_login(client, code="000000")]

    pages = [page_without_csrf(r) for r in answers]
    assert {r.status_code for r in answers} == {200} and LOGIN_ERROR in pages[0] and pages[0] == pages[1] == pages[2]
    assert client.get("/admin/").status_code == 302


def test_admin_logins_are_locked_out_after_five_failures(client, staff):
    device = totp_device(staff)
    for _ in range(5):
        admin_login(client, password="guess")

    response = admin_login(client, code=totp_code(device))

    assert response.status_code == 429 and b"Too many login attempts" in response.content
    assert client.get("/admin/").status_code == 302
    assert admin_login(Client(REMOTE_ADDR="198.51.100.9"), code=totp_code(device)).status_code == 302


def test_staff_totp_enrol_prints_the_uri_once_and_refuses_a_second_device(staff):
    out = StringIO()
    call_command("staff_totp_enrol", "--username", "ops", stdout=out)
    device = otp.totp_device_confirmed(user=staff)
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    assert "otpauth://totp/" in out.getvalue() and secret in out.getvalue()

    with pytest.raises(CommandError, match="already has a confirmed device"):
        call_command("staff_totp_enrol", "--username", "ops", stdout=StringIO())
    assert otp.totp_device_model().objects.filter(user=staff).count() == 1

    call_command("staff_totp_enrol", "--username", "ops", "--replace", "--no-qr", stdout=StringIO())
    assert list(otp.totp_device_model().objects.filter(user=staff)) != [device]
    assert otp.totp_device_model().objects.filter(user=staff).count() == 1


def test_staff_totp_enrol_refuses_a_user_who_is_not_staff():
    user = get_user_model().objects.create_user("someone", password=PASSWORD)
    with pytest.raises(CommandError, match="not staff"):
        call_command("staff_totp_enrol", "--username", "someone", stdout=StringIO())
    assert not otp.totp_device_model().objects.exists() and user.pk


# Seeds


def test_the_device_pages_never_show_a_seed(client, staff):
    merchant = merchant_services.merchant_create(email="shop@example.com", password=PASSWORD)
    device = totp_device(merchant.user)
    login_verified(client, staff)
    secrets = [device.key, base64.b32encode(device.bin_key).decode().rstrip("="), "otpauth"]
    base = f"/admin/{device._meta.app_label}/{device._meta.model_name}/"  # the model of GATEWAY_TOTP_DEVICE_MODEL

    pages = [client.get(base), client.get(f"{base}{device.pk}/change/"),
             client.get(f"{base}{device.pk}/config/", follow=True), client.get(f"{base}{device.pk}/qrcode/", follow=True)]

    assert pages[0].status_code == 200 and merchant.email in pages[0].content.decode()
    assert pages[1].status_code == 200
    for page in pages:
        assert not any(secret in page.content.decode() for secret in secrets)
    assert client.get(f"{base}add/").status_code == 403


# Facts


@pytest.mark.parametrize("model", [PaymentIntent, Charge, Event, UnmatchedDeposit, WebhookDelivery, Transfer,
                                   BalanceDiscrepancy, DepositAddress, MasterSeed, ChainCursor])
def test_facts_cannot_be_added_changed_or_deleted(staff, model):
    request = RequestFactory().get("/admin/")
    request.user = staff
    model_admin = admin.site._registry[model]

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert "delete_selected" not in model_admin.get_actions(request)


def test_an_event_cannot_be_deleted_or_changed_over_http(client, staff, merchant):
    event = event_record(merchant=merchant, livemode=False, type="payment_intent.succeeded", obj_id="pi_1",
                         snapshot={"id": "pi_1", "object": "payment_intent"})
    login_verified(client, staff)
    base = f"/admin/payments/event/{quote(event.pk)}/"  # the admin unquotes "_XX": evt_40... is evt_@...

    assert client.get(base + "change/").status_code == 200
    assert client.post(base + "delete/", {"post": "yes"}).status_code == 403
    assert client.post(base + "change/", {"type": "payment_intent.canceled"}).status_code == 403
    listing = client.get("/admin/payments/event/")
    assert b"delete_selected" not in listing.content
    assert client.post("/admin/payments/event/", {"action": "delete_selected", "_selected_action": [event.pk],
                                                  "post": "yes"}).status_code in (200, 302)
    event.refresh_from_db()
    assert Event.objects.filter(pk=event.pk, type="payment_intent.succeeded").exists()


def test_api_keys_are_revoked_never_deleted(client, staff, merchant):
    key = merchant_services.api_key_create(merchant=merchant).api_key
    login_verified(client, staff)

    assert client.post(f"/admin/merchants/apikey/{quote(key.pk)}/delete/", {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


# Chain data


def form_data(response) -> dict:
    """What the admin's change form would post as it is (the main form and its inline formsets)."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is True:
                data[form.add_prefix(name)] = "on"
            elif value not in (None, False):
                data[form.add_prefix(name)] = value
    return data


def token_change(client, token, **changes):
    url = f"/admin/wallets/token/{token.pk}/change/"
    return client.post(url, {**form_data(client.get(url)), **changes})


def test_a_token_change_without_reason_or_confirmation_is_refused_and_changes_nothing(client, staff, networks):
    token = Token.objects.filter(network__livemode=True).first()
    login_verified(client, staff)

    for extra in ({}, {"reason": "issuer moved the contract"}, {"confirm": "on"}, {"reason": "  ", "confirm": "on"}):
        response = token_change(client, token, decimals=token.decimals + 1, **extra)
        assert response.status_code == 200
        assert {"reason", "confirm"} & set(response.context["adminform"].form.errors)

    assert Token.objects.get(pk=token.pk).decimals == token.decimals
    assert not LogEntry.objects.exists()


def test_a_token_change_with_reason_and_confirmation_is_saved_and_logged(client, staff, networks):
    token = Token.objects.filter(network__livemode=True).first()
    login_verified(client, staff)

    response = token_change(client, token, decimals=token.decimals + 1, reason="issuer redeployed", confirm="on")

    assert response.status_code == 302
    assert Token.objects.get(pk=token.pk).decimals == token.decimals + 1
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag, entry.object_id) == (staff, CHANGE, str(token.pk))
    assert "Decimals" in entry.get_change_message() and "Reason: issuer redeployed" in entry.get_change_message()


def test_a_finality_change_needs_a_reason_too_and_tokens_cannot_be_deleted(client, staff, networks):
    network = Network.objects.filter(livemode=True, finality="finalized").first()
    login_verified(client, staff)
    url = f"/admin/wallets/network/{network.pk}/change/"
    data = form_data(client.get(url))

    assert client.post(url, {**data, "finality": "confirmations"}).status_code == 200
    assert Network.objects.get(pk=network.pk).finality == "finalized"

    done = client.post(url, {**data, "finality": "confirmations", "reason": "safer on this chain", "confirm": "on"})
    assert done.status_code == 302 and Network.objects.get(pk=network.pk).finality == "confirmations"
    assert "Reason: safer on this chain" in LogEntry.objects.get().get_change_message()
    token = network.tokens.first()
    assert client.post(f"/admin/wallets/token/{token.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/wallets/network/{network.pk}/delete/", {"post": "yes"}).status_code == 403


def test_the_sweeper_address_and_eip7702_cannot_be_changed_in_the_admin(client, staff, networks):
    network = Network.objects.filter(livemode=True).first()
    before = (network.sweeper_address, network.eip7702)
    login_verified(client, staff)
    url = f"/admin/wallets/network/{network.pk}/change/"
    data = form_data(client.get(url))
    assert "sweeper_address" not in data and "eip7702" not in data

    done = client.post(url, {**data, "sweeper_address": "0x" + "ab" * 20, "eip7702": "" if network.eip7702 else "on",
                             "reason": "try to move the sweeper", "confirm": "on"})

    assert done.status_code == 302
    network.refresh_from_db()
    assert (network.sweeper_address, network.eip7702) == before


def test_the_admin_login_shares_the_limit_of_failed_logins_per_address(client, staff, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_IP = "3/h"
    device = totp_device(staff)
    for user in ("ops", "nobody", "root"):
        client.post("/admin/login/?next=/admin/", {"username": user, "password": "guess", "otp_token": ""})

    refused = admin_login(client, code=totp_code(device))

    assert refused.status_code == 429 and b"Too many failed sign-ins" in refused.content
    assert client.get("/admin/").status_code == 302
    assert admin_login(Client(REMOTE_ADDR="198.51.100.7"), code=totp_code(device)).status_code == 302
