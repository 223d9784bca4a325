"""Hostile input against every /v1 endpoint, the checkout and the portal (issue 11): NUL and other control
characters, lone surrogates, overlong strings, wrong types, nesting, huge numbers, non-ASCII digits, in every field,
path id and cursor. Whatever arrives: never a 5xx, always Stripe's error shape naming the field, and nothing written."""
import json
import re
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from merchants import services as merchant_services
from merchants.models import ApiKey, IdempotencyRecord, Merchant, WebhookEndpoint
from payments.models import Charge, Event, PaymentIntent
from tests.otp import login_verified

pytestmark = pytest.mark.django_db

NUL, CTRL, SURROGATE = "a\x00b", "a\x1bb", "a\ud800b"
OVERLONG = "x" * 20_000
NON_ASCII_DIGITS = ("１００", "²", "١٢")
HUGE = "9" * 400

# What no text field takes; what no integer, boolean, choice or id takes on top of that.
BAD_TEXT = {"nul": NUL, "control": CTRL, "surrogate": SURROGATE, "overlong": OVERLONG,
            "object": {"a": "b"}, "list": ["a", "b"], "nested": {"a": {"b": {"c": {"d": "e"}}}}}
BAD_SCALAR = {**BAD_TEXT, "huge": HUGE, **{f"digits{i}": d for i, d in enumerate(NON_ASCII_DIGITS)},
              "float": "10.5", "empty_object": {}}
# An object of optional parameters takes {}.
BAD_OBJECT = {name: value for name, value in BAD_SCALAR.items() if name != "empty_object"}

VALID_CREATE = {"amount": 1999, "currency": "usd"}
VALID_ENDPOINT = {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}


@pytest.fixture
def ready(networks, wallet):
    """A gateway that can take payments in test mode."""


@pytest.fixture
def hostile(secret_key):
    """A client that returns the response of a request that raised (a 500) instead of raising in the test."""
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    return client


@pytest.fixture
def objects(api, ready, merchant):
    intent = api.post("/v1/payment_intents", {**VALID_CREATE, "metadata[k]": "v", "description": "d"}).json()
    endpoint = api.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/h", "enabled_events[]": "*"}).json()
    return {"intent": intent["id"], "client_secret": intent["client_secret"], "endpoint": endpoint["id"]}


def snapshot():
    """Every row a request could write, and the fields an update could change."""
    return {
        "counts": [m.objects.count() for m in (PaymentIntent, Event, Charge, WebhookEndpoint, IdempotencyRecord,
                                               ApiKey, Merchant)],
        "intents": list(PaymentIntent.objects.order_by("pk").values_list(
            "pk", "status", "description", "metadata", "receipt_email", "amount")),
        "endpoints": list(WebhookEndpoint.objects.order_by("pk").values_list(
            "pk", "url", "description", "metadata", "enabled_events", "status", "secret")),
    }


def form_pairs(field: str, value) -> list[tuple[str, str]]:
    """`value` in Stripe's bracket notation."""
    if isinstance(value, dict):
        return [pair for key, inner in value.items() for pair in form_pairs(f"{field}[{key}]", inner)] or [(field, "")]
    if isinstance(value, list):
        return [(f"{field}[]", str(item)) for item in value]
    return [(field, str(value))]


def send(client, path: str, body: dict, *, as_json: bool, idempotency_key: str | None = None):
    extra = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key is not None else {}
    if as_json:
        return client.post(path, json.dumps(body), content_type="application/json", **extra)
    pairs = [pair for field, value in body.items() for pair in form_pairs(field, value)]
    return client.post(path, urlencode(pairs, encoding="utf-8", errors="surrogatepass"),
                       content_type="application/x-www-form-urlencoded", **extra)


def assert_refused(response, *, status=400, param: str | None = None):
    assert response.status_code == status, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error.get("param", "").startswith(param), error


def post_cases(objects):
    """(path, the valid body, {field: the bad values it must refuse})."""
    intent, endpoint = objects["intent"], objects["endpoint"]
    return [
        ("/v1/payment_intents", VALID_CREATE, {
            "amount": BAD_SCALAR, "currency": BAD_SCALAR, "description": BAD_TEXT, "receipt_email": BAD_TEXT,
            "return_url": BAD_TEXT, "confirm": BAD_SCALAR, "payment_method_types": BAD_SCALAR,
            "payment_method_options": BAD_OBJECT,
        }),
        (f"/v1/payment_intents/{intent}", {}, {"description": BAD_TEXT, "receipt_email": BAD_TEXT}),
        (f"/v1/payment_intents/{intent}/cancel", {}, {"cancellation_reason": BAD_SCALAR}),
        (f"/v1/payment_intents/{intent}/confirm", {}, {"payment_method_data": BAD_SCALAR}),
        (f"/v1/test_helpers/payment_intents/{intent}/simulate_crypto_deposit",
         {"network": "bsc", "token_currency": "usdt"}, {"network": BAD_SCALAR, "token_currency": BAD_SCALAR,
                                                        "amount": BAD_SCALAR}),
        ("/v1/webhook_endpoints", VALID_ENDPOINT, {"url": BAD_SCALAR, "enabled_events": BAD_SCALAR,
                                                  "description": BAD_TEXT}),
        (f"/v1/webhook_endpoints/{endpoint}", {}, {"url": BAD_SCALAR, "enabled_events": BAD_SCALAR,
                                                   "description": BAD_TEXT, "disabled": BAD_SCALAR}),
        (f"/v1/webhook_endpoints/{endpoint}/roll_secret", {}, {"previous_secret_expires_in": BAD_SCALAR}),
    ]


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_every_field_of_every_post_refuses_hostile_values(hostile, objects, as_json):
    before = snapshot()
    for path, valid, fields in post_cases(objects):
        for field, values in fields.items():
            for name, value in values.items():
                if name == "surrogate" and not as_json:
                    continue  # a form body is UTF-8: a lone surrogate cannot be written in one
                response = send(hostile, path, {**valid, field: value}, as_json=as_json)
                assert response.status_code == 400, (path, field, name, response.status_code, response.content[:300])
                assert_refused(response)
    assert snapshot() == before


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
@pytest.mark.parametrize("where", ["key", "value"])
@pytest.mark.parametrize("bad", [NUL, CTRL, SURROGATE, "k" * 41], ids=["nul", "control", "surrogate", "overlong"])
def test_metadata_keys_and_values_refuse_hostile_text(hostile, objects, as_json, where, bad):
    if bad == SURROGATE and not as_json:
        pytest.skip("a form body is UTF-8: a lone surrogate cannot be written in one")
    if where == "value" and bad == "k" * 41:
        bad = "v" * 501
    metadata = {bad: "v"} if where == "key" else {"k": bad}
    before = snapshot()
    for path, valid in [("/v1/payment_intents", VALID_CREATE), (f"/v1/payment_intents/{objects['intent']}", {}),
                        ("/v1/webhook_endpoints", VALID_ENDPOINT),
                        (f"/v1/webhook_endpoints/{objects['endpoint']}", {})]:
        response = send(hostile, path, {**valid, "metadata": metadata}, as_json=as_json)
        assert_refused(response, param="metadata")
    assert snapshot() == before


def test_an_unknown_parameter_with_a_nul_is_refused_naming_it_printably(hostile, objects):
    response = send(hostile, "/v1/payment_intents", {**VALID_CREATE, "amo\x00unt": "1"}, as_json=True)

    assert_refused(response, param="amo\\x00unt")


@pytest.mark.parametrize("key", [NUL, CTRL, "k" * 256, ""], ids=["nul", "control", "overlong", "empty"])
def test_a_hostile_idempotency_key_is_refused(hostile, ready, key):
    before = snapshot()
    response = send(hostile, "/v1/payment_intents", VALID_CREATE, as_json=False, idempotency_key=key)
    assert_refused(response, param="Idempotency-Key")
    assert snapshot() == before


def test_a_deeply_nested_json_body_is_refused_in_process(hostile, ready):
    before = snapshot()
    for body in ("[" * 30_000 + "]" * 30_000, '{"metadata": ' + '{"a": ' * 40 + "1" + "}" * 41,
                 '{"a": "' + "[" * 5000 + '"}'):
        response = hostile.post("/v1/payment_intents", body, content_type="application/json")
        assert_refused(response)
    assert snapshot() == before


def test_brackets_inside_json_strings_do_not_count_as_nesting(hostile, ready):
    response = hostile.post("/v1/payment_intents", json.dumps({**VALID_CREATE, "description": "[" * 100}),
                            content_type="application/json")

    assert response.status_code == 200 and response.json()["description"] == "[" * 100


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_limit_is_refused_before_it_is_parsed(hostile, ready, content_type):
    before = snapshot()
    body = "description=" + "x" * settings.GATEWAY_API_MAX_BODY_BYTES
    response = hostile.post("/v1/payment_intents", body, content_type=content_type)
    assert_refused(response, status=413)
    assert str(settings.GATEWAY_API_MAX_BODY_BYTES) in response.json()["error"]["message"]
    assert snapshot() == before


# --- Ids in paths, cursors, integers in queries -------------------------------------------------------------------

BAD_IDS = ["%00", "pi_%00abc", "pi_%C3%A9", "pi_" + "a" * 300, "pi_%ED%A0%80", "pi_%1B", "%EF%BC%91", "pi_a%20b",
           "ch_abc", "evt_abc", "we_abc"]


def detail_paths(bad: str) -> list[tuple[str, str]]:
    return [
        ("get", f"/v1/payment_intents/{bad}"), ("post", f"/v1/payment_intents/{bad}"),
        ("post", f"/v1/payment_intents/{bad}/cancel"), ("post", f"/v1/payment_intents/{bad}/confirm"),
        ("post", f"/v1/test_helpers/payment_intents/{bad}/simulate_crypto_deposit"),
        ("get", f"/v1/charges/{bad.replace('pi_', 'ch_')}"), ("get", f"/v1/events/{bad.replace('pi_', 'evt_')}"),
        ("get", f"/v1/webhook_endpoints/{bad.replace('pi_', 'we_')}"),
        ("post", f"/v1/webhook_endpoints/{bad.replace('pi_', 'we_')}"),
        ("delete", f"/v1/webhook_endpoints/{bad.replace('pi_', 'we_')}"),
        ("post", f"/v1/webhook_endpoints/{bad.replace('pi_', 'we_')}/roll_secret"),
    ]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_path_id_of_the_wrong_shape_is_a_json_404(hostile, objects, bad):
    before = snapshot()
    for method, path in detail_paths(bad):
        if bad in ("ch_abc", "evt_abc", "we_abc") and not path.startswith("/v1/payment_intents"):
            continue  # well-shaped for those resources: an ordinary unknown id
        response = getattr(hostile, method)(path)
        assert response.status_code == 404, (method, path, response.status_code, response.content[:200])
        error = response.json()["error"]
        assert error["code"] == "resource_missing" and error["type"] == "invalid_request_error"
    assert snapshot() == before


@pytest.mark.parametrize("path,prefix", [("/v1/payment_intents", "pi"), ("/v1/charges", "ch"), ("/v1/events", "evt"),
                                         ("/v1/webhook_endpoints", "we")])
@pytest.mark.parametrize("cursor", ["%00", "x", "%C3%A9", "a" * 300, "{prefix}_%00", "{prefix}_%C3%A9", "zz_abc"])
@pytest.mark.parametrize("param", ["starting_after", "ending_before"])
def test_a_cursor_of_the_wrong_shape_is_a_400_naming_it(hostile, ready, path, prefix, cursor, param):
    response = hostile.get(f"{path}?{param}={cursor.format(prefix=prefix)}")

    assert_refused(response, param=param)


@pytest.mark.parametrize("path", ["/v1/payment_intents", "/v1/charges", "/v1/events", "/v1/webhook_endpoints"])
@pytest.mark.parametrize("query", [
    "limit=%C2%B2", "limit=%EF%BC%95", "limit=%00", "limit=1e3", "limit=" + "9" * 400, "limit[a]=1", "limit[]=1",
    "created[gte]=%C2%B2", "created[gte]=%EF%BC%91%EF%BC%90", "created=%00", "created[%00]=1",
    "created[lt][x][y]=1", "%00=1", "expand[]=%00", "a[%C2%B2]=1", "created[gte]=" + "1" * 5000,
])
def test_list_queries_refuse_hostile_values(hostile, ready, path, query):
    response = hostile.get(f"{path}?{query}")

    assert_refused(response)


@pytest.mark.parametrize("query", ["payment_intent=%00", "payment_intent=" + "p" * 300, "payment_intent[a]=b"])
def test_the_charges_filter_refuses_hostile_values(hostile, ready, query):
    assert_refused(hostile.get(f"/v1/charges?{query}"), param="payment_intent")


@pytest.mark.parametrize("query", ["type=%00", "types[]=%00", "type=" + "a" * 300, "delivery_success=%C2%B2"])
def test_the_events_filters_refuse_hostile_values(hostile, ready, query):
    assert_refused(hostile.get(f"/v1/events?{query}"))


def test_an_unknown_v1_path_or_method_is_a_stripe_error(hostile, ready):
    for path in ("/v1", "/v1/", "/v1/nope", "/v1/payment_intents/", "/v1/payment_intents/pi_abc/nope", "/v1/%00"):
        response = hostile.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "resource_missing"
        assert "Unrecognized request URL" in response.json()["error"]["message"]
    for method, path in (("delete", "/v1/payment_intents"), ("put", "/v1/charges"), ("patch", "/v1/events"),
                         ("delete", "/v1/payment_intents/pi_abc")):
        response = getattr(hostile, method)(path)
        assert response.status_code == 405, (method, path)
        assert response.json()["error"]["type"] == "invalid_request_error"


# --- The publishable key's retrieve ------------------------------------------------------------------------------

def test_a_wrong_client_secret_looks_exactly_like_an_unknown_intent(objects, merchant, make_key):
    client = Client(raise_request_exception=False,
                    HTTP_AUTHORIZATION=f"Bearer {make_key(merchant, kind='publishable')}")
    intent = objects["intent"]
    unknown = "pi_" + "Z" * 24
    for secret in ("%C3%A9", "x", "%00", quote(f"{intent}_secret_é"), "a" * 300, f"{intent}_secret_wrong"):
        known = client.get(f"/v1/payment_intents/{intent}?client_secret={secret}")
        missing = client.get(f"/v1/payment_intents/{unknown}?client_secret={secret}")
        assert known.status_code == missing.status_code, (secret, known.content, missing.content)
        assert known.status_code in (400, 404)
        if known.status_code == 404:
            assert known.json() == {**missing.json(), "error": {
                **missing.json()["error"], "message": missing.json()["error"]["message"].replace(unknown, intent)}}


# --- The checkout and the portal ---------------------------------------------------------------------------------

def page_text(response) -> str:
    return re.sub(r"nonce[-=\"']*[A-Za-z0-9_\-]+", "", response.content.decode())


@pytest.mark.parametrize("suffix", ["", "/status"])
def test_the_checkout_gives_the_same_404_for_hostile_secrets_as_for_unknown_ones(objects, suffix):
    client = Client(raise_request_exception=False)
    intent = objects["intent"]
    unknown = client.get(f"/pay/pi_{'Z' * 24}_secret_{'y' * 24}{suffix}")
    assert unknown.status_code == 404
    for secret in ("pi_%00", "pi_%00x_secret_y", f"{intent}_secret_%C3%A9", f"{intent}_secret_%00",
                   f"{intent}_secret_" + "a" * 5000, f"{intent}%00_secret_x", "%ED%A0%80", f"{intent}_secret_",
                   f"{intent}_secret_{'y' * 24}", "%EF%BC%91"):
        response = client.get(f"/pay/{secret}{suffix}")
        assert response.status_code == 404, (secret, response.status_code)
        assert page_text(response) == page_text(unknown), secret


@pytest.fixture
def portal(merchant):
    """A logged-in merchant user with one key."""
    user = get_user_model().objects.create_user(username="owner@example.com", password="x" * 20)
    merchant.user = user
    merchant.save(update_fields=["user"])
    merchant_services.api_key_create(merchant=merchant)
    client = Client(raise_request_exception=False)
    login_verified(client, user)  # the portal and the admin need a session verified by a TOTP code
    return client


@pytest.mark.parametrize("key_id", ["%00", "key_%00", "key_%C3%A9", "key_" + "a" * 300, "%ED%A0%80", "pi_abc"])
@pytest.mark.parametrize("action", ["revoke", "roll"])
def test_the_portal_gives_404_for_hostile_key_ids(portal, key_id, action):
    before = snapshot()
    response = portal.post(f"/portal/keys/{key_id}/{action}", {"expires_in_hours": "0"})
    assert response.status_code == 404, response.status_code
    assert snapshot() == before


def test_the_portal_forms_refuse_hostile_text(portal):
    before = snapshot()
    for name in (NUL, CTRL, "n" * 101):
        response = portal.post("/portal/keys/", {"kind": "secret", "mode": "test", "name": name})
        assert response.status_code == 400
    for hours in ("１", "²", "%00", "99999"):
        key = ApiKey.objects.first()
        assert portal.post(f"/portal/keys/{key.id}/roll", {"expires_in_hours": hours}).status_code == 400
    assert snapshot() == before


@pytest.fixture
def staff(db):
    user = get_user_model().objects.create_superuser(username="admin", password="x" * 20, email="a@example.com")
    client = Client(raise_request_exception=False)
    login_verified(client, user)  # the portal and the admin need a session verified by a TOTP code
    return client


@pytest.mark.parametrize("url", [
    "/admin/merchants/merchant/%00/change/", "/admin/merchants/merchant/acct_%00/change/",
    "/admin/merchants/webhookendpoint/we_%00/change/", "/admin/merchants/apikey/key_%00/change/",
    "/admin/payments/paymentintent/pi_%00/change/", "/admin/%00/",
])
def test_admin_change_urls_with_a_nul_are_a_404(staff, url):
    assert staff.get(url).status_code == 404


@pytest.mark.parametrize("query", ["q=%00", "q=a%01", "id__exact=%00", "%00=1"])
def test_admin_lists_refuse_a_nul_in_the_query(staff, query):
    for url in ("/admin/merchants/merchant/", "/admin/payments/paymentintent/"):
        response = staff.get(f"{url}?{query}")
        assert response.status_code == 400, (url, query, response.status_code)


@pytest.mark.parametrize("value", ['["bsc\\u0000"]', '{"k\\u0000": 1}', '["\\u0001"]', '["\\ud800"]'])
def test_admin_json_fields_refuse_an_escaped_nul_with_a_form_error(staff, value):
    # A "\u0000" escape passes the form's own NUL check (the text has none) and decodes to one, which jsonb refuses
    merchant = merchant_services.merchant_create(email="m@example.com", name="M")
    form = {"name": "M", "email": "m@example.com", "user": "", "payment_expiry_minutes": "60",
            "underpayment_tolerance_bps": "0", "limit_currency": "usd", "enabled_networks": value,
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
            "api_keys-TOTAL_FORMS": "0", "api_keys-INITIAL_FORMS": "0"}

    response = staff.post(f"/admin/merchants/merchant/{merchant.id}/change/", form)

    assert response.status_code == 200 and b"disallowed character" in response.content
    merchant.refresh_from_db()
    assert merchant.enabled_networks == Merchant._meta.get_field("enabled_networks").get_default()
