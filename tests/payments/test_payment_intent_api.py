"""The PaymentIntent API through DRF's test client: the contract's shapes, validation, scoping and states."""
import json

import pytest

from merchants.models import IdempotencyRecord
from payments.models import Event, PaymentIntent, PaymentOption
from tests.merchants.factories import MerchantFactory
from wallets.models import DepositAddress

pytestmark = pytest.mark.usefixtures("ready")

NETWORKS = "payment_method_options[crypto][deposit_options][networks][]"


def create(api, body=None, **headers):
    body = {"amount": "1234", "currency": "usd", **(body or {})}
    return api.post("/v1/payment_intents", body, **headers)


def counts():
    return (PaymentIntent.objects.count(), Event.objects.count(), DepositAddress.objects.count(),
            PaymentOption.objects.count(), IdempotencyRecord.objects.count())


def test_create_waits_for_funds_with_exact_amounts_and_payment_uris(api):
    response = create(api, {"metadata[order_id]": "A-1", "description": "Order A-1", NETWORKS: "bsc"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "payment_intent" and body["id"].startswith("pi_")
    assert body["status"] == "requires_action" and body["livemode"] is False
    assert body["amount"] == 1234 and body["currency"] == "usd" and body["amount_received"] == 0
    assert body["metadata"] == {"order_id": "A-1"}
    assert response["Request-Id"].startswith("req_")
    details = body["next_action"]["crypto_display_details"]
    assert details["hosted_instructions_url"].endswith("/pay/" + body["client_secret"])
    bsc = details["deposit_addresses"]["bsc"]
    assert bsc["address"].startswith("0x") and len(bsc["address"]) == 42
    tokens = {t["token_currency"]: t for t in bsc["supported_tokens"]}
    assert set(tokens) == {"usdt", "usdc"}
    assert tokens["usdt"]["amount"] == "12340000000000000000" and tokens["usdt"]["decimals"] == 18
    assert tokens["usdt"]["payment_uri"].startswith("ethereum:0x")
    assert "@97/transfer?address=" in tokens["usdt"]["payment_uri"]
    assert tokens["usdt"]["payment_uri"].endswith("&uint256=1.234e19")
    types = list(Event.objects.filter(object_id=body["id"]).order_by("sequence").values_list("type", "sequence"))
    assert types == [("payment_intent.created", 1), ("payment_intent.requires_action", 2)]


def test_six_decimal_tokens_get_their_own_exact_amount(api):
    response = create(api, {NETWORKS: "ethereum", "amount": "1999"})

    token = response.json()["next_action"]["crypto_display_details"]["deposit_addresses"]["ethereum"]["supported_tokens"][0]
    assert token["decimals"] == 6 and token["amount"] == "19990000"


def test_json_body_works_like_a_form_body(api):
    response = api.post(
        "/v1/payment_intents",
        data=json.dumps({"amount": 500, "currency": "USD", "metadata": {"k": "v"},
                         "payment_method_options": {"crypto": {"deposit_options": {"networks": ["bsc"]}}}}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["currency"] == "usd"


def test_every_intent_gets_a_fresh_address(api):
    addresses = {create(api).json()["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]
                 for _ in range(5)}
    assert len(addresses) == 5


@pytest.mark.parametrize("body, param", [
    ({"amount": "0"}, "amount"),
    ({"amount": "-5"}, "amount"),
    ({"amount": "10.5"}, "amount"),
    ({"amount": "1e3"}, "amount"),
    ({"amount": "abc"}, "amount"),
    ({"amount": "9" * 40}, "amount"),
    ({"amount": "100000000000"}, "amount"),
    ({"currency": "xyz"}, "currency"),
    ({"currency": ""}, "currency"),
    ({NETWORKS: "dogechain"}, "payment_method_options[crypto][deposit_options][networks]"),
    ({"payment_method_types[]": "card"}, "payment_method_types[0]"),
    ({"confirm": "maybe"}, "confirm"),
    ({"receipt_email": "not-an-email"}, "receipt_email"),
    ({"surprise": "1"}, "surprise"),
    ({"metadata[" + "k" * 41 + "]": "v"}, "metadata[" + "k" * 41 + "]"),
    ({"metadata[k]": "v" * 501}, "metadata[k]"),
    ({**{f"metadata[k{i}]": "v" for i in range(51)}}, "metadata"),
    ({"metadata[a][b": "v"}, "metadata[a][b"),
    ({"metadata]": "v"}, "metadata]"),
])
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(api, body, param):
    before = counts()

    response = create(api, body)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert error["message"]
    assert counts() == before


@pytest.mark.parametrize("body, param", [
    ({"amount": 10.5, "currency": "usd"}, "amount"),
    ({"amount": "100", "currency": "usd"}, None),
    ({"amount": True, "currency": "usd"}, "amount"),
    ({"amount": 100, "currency": 5}, "currency"),
    ({"amount": 100, "currency": "usd", "metadata": ["a"]}, "metadata"),
    ({"amount": 100, "currency": "usd", "metadata": {"k": {"nested": 1}}}, "metadata[k]"),
    ({"amount": 100, "currency": "usd", "payment_method_options": {"crypto": {"deposit_options": {"networks": 5}}}},
     "payment_method_options[crypto][deposit_options][networks]"),
    ({"amount": 100, "currency": "usd", "confirm": "yes"}, "confirm"),
    ({"currency": "usd"}, "amount"),
])
def test_json_of_the_wrong_types_is_refused(api, body, param):
    before = counts()
    response = api.post("/v1/payment_intents", data=json.dumps(body), content_type="application/json")
    if param is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param
    assert counts() == before


def test_broken_json_is_a_clear_400(api):
    response = api.post("/v1/payment_intents", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize("header, status", [
    (None, 401),
    ("Bearer ", 401),
    ("Bearer sk_test_short", 401),
    ("Bearer sk_test_" + "x" * 40, 401),
    ("Token abc", 401),
    ("Basic !!!", 401),
])
def test_missing_or_malformed_keys_are_refused(anon, header, status):
    kwargs = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    response = anon.post("/v1/payment_intents", {"amount": "100", "currency": "usd"}, **kwargs)
    assert response.status_code == status
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert PaymentIntent.objects.count() == 0


def test_basic_auth_with_the_key_as_user_name(anon, secret_key):
    import base64

    token = base64.b64encode(f"{secret_key}:".encode()).decode()
    response = anon.get("/v1/payment_intents", HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code == 200


def test_merchants_and_modes_never_see_each_others_intents(api, make_key, anon):
    mine = create(api).json()["id"]
    other = MerchantFactory()
    other_key = make_key(other)
    my_live_key = make_key(PaymentIntent.objects.get(pk=mine).merchant, livemode=True)

    for key in (other_key, my_live_key):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
        assert anon.get(f"/v1/payment_intents/{mine}", **headers).status_code == 404
        assert anon.post(f"/v1/payment_intents/{mine}", {"description": "x"}, **headers).status_code == 404
        assert anon.post(f"/v1/payment_intents/{mine}/cancel", **headers).status_code == 404
        assert anon.get("/v1/payment_intents", **headers).json()["data"] == []


def test_revoked_key_stops_working(api, merchant):
    from merchants.services import api_key_revoke

    assert api.get("/v1/payment_intents").status_code == 200
    api_key_revoke(api_key=merchant.api_keys.get())
    assert api.get("/v1/payment_intents").status_code == 401


def test_publishable_key_reads_only_with_the_client_secret(api, merchant, make_key, anon):
    intent = create(api).json()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {make_key(merchant, kind='publishable')}"}

    assert anon.get(f"/v1/payment_intents/{intent['id']}", **headers).status_code == 404
    ok = anon.get(f"/v1/payment_intents/{intent['id']}?client_secret={intent['client_secret']}", **headers)
    assert ok.status_code == 200
    assert anon.post("/v1/payment_intents", {"amount": "1", "currency": "usd"}, **headers).status_code == 403
    assert anon.get("/v1/payment_intents", **headers).status_code == 403


def test_restricted_key_needs_the_permission(api, merchant, make_key, anon):
    read_only = {"HTTP_AUTHORIZATION": f"Bearer {make_key(merchant, kind='restricted', permissions={'payment_intents': 'read'})}"}
    assert anon.get("/v1/payment_intents", **read_only).status_code == 200
    response = anon.post("/v1/payment_intents", {"amount": "1", "currency": "usd"}, **read_only)
    assert response.status_code == 403 and "payment_intents" in response.json()["error"]["message"]


def test_update_merges_metadata_and_empty_values_unset(api):
    pi = create(api, {"metadata[a]": "1", "metadata[b]": "2"}).json()["id"]

    body = api.post(f"/v1/payment_intents/{pi}", {"metadata[b]": "", "metadata[c]": "3", "description": "d"}).json()
    assert body["metadata"] == {"a": "1", "c": "3"} and body["description"] == "d"
    body = api.post(f"/v1/payment_intents/{pi}", {"metadata": ""}).json()
    assert body["metadata"] == {}


def test_cancel_then_cancel_again_is_an_unexpected_state(api):
    pi = create(api).json()["id"]

    body = api.post(f"/v1/payment_intents/{pi}/cancel", {"cancellation_reason": "abandoned"}).json()
    assert body["status"] == "canceled" and body["cancellation_reason"] == "abandoned" and body["next_action"] is None
    again = api.post(f"/v1/payment_intents/{pi}/cancel")
    assert again.status_code == 400 and again.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert Event.objects.filter(object_id=pi, type="payment_intent.canceled").count() == 1


@pytest.mark.parametrize("status", ["processing", "succeeded"])
def test_cancel_is_refused_once_funds_are_seen(api, status):
    pi = create(api).json()["id"]
    PaymentIntent.objects.filter(pk=pi).update(status=status)

    response = api.post(f"/v1/payment_intents/{pi}/cancel")
    assert response.status_code == 400 and response.json()["error"]["code"] == "payment_intent_unexpected_state"
    assert PaymentIntent.objects.get(pk=pi).status == status


def test_confirm_false_waits_for_confirmation_without_an_address(api):
    body = create(api, {"confirm": "false"}).json()
    assert body["status"] == "requires_confirmation" and body["next_action"] is None
    assert DepositAddress.objects.count() == 0

    body = api.post(f"/v1/payment_intents/{body['id']}/confirm").json()
    assert body["status"] == "requires_action"
    assert body["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]
    assert api.post(f"/v1/payment_intents/{body['id']}/confirm").status_code == 400


def test_idempotent_retry_replays_and_a_different_body_is_refused(api):
    first = create(api, HTTP_IDEMPOTENCY_KEY="order-1")
    again = create(api, HTTP_IDEMPOTENCY_KEY="order-1")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert PaymentIntent.objects.count() == 1

    other = create(api, {"amount": "999"}, HTTP_IDEMPOTENCY_KEY="order-1")
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    assert PaymentIntent.objects.count() == 1


def test_a_failed_validation_is_not_stored_under_the_idempotency_key(api):
    assert create(api, {"amount": "0"}, HTTP_IDEMPOTENCY_KEY="k").status_code == 400
    assert create(api, HTTP_IDEMPOTENCY_KEY="k").status_code == 200


def test_list_filters_and_paginates_newest_first(api):
    ids = [create(api).json()["id"] for _ in range(5)]
    api.post(f"/v1/payment_intents/{ids[0]}/cancel")

    page = api.get("/v1/payment_intents?limit=2").json()
    assert page["object"] == "list" and page["url"] == "/v1/payment_intents" and page["has_more"] is True
    assert [p["id"] for p in page["data"]] == ids[::-1][:2]
    rest = api.get(f"/v1/payment_intents?limit=10&starting_after={page['data'][-1]['id']}").json()
    assert [p["id"] for p in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    back = api.get(f"/v1/payment_intents?limit=2&ending_before={ids[0]}").json()
    assert [p["id"] for p in back["data"]] == [ids[2], ids[1]]
    canceled = api.get("/v1/payment_intents?status=canceled").json()["data"]
    assert [p["id"] for p in canceled] == [ids[0]]
    created = PaymentIntent.objects.get(pk=ids[0]).created.timestamp()
    assert len(api.get(f"/v1/payment_intents?created%5Bgte%5D={int(created)}").json()["data"]) == 5
    assert api.get(f"/v1/payment_intents?created[lt]={int(created)}").json()["data"] == []


@pytest.mark.parametrize("query, param", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
    ("created[gte]=abc", "created[gte]"), ("created[foo]=1", "created[foo]"),
    ("starting_after=pi_missing", "starting_after"), ("status=bogus", "status"),
    ("ending_before=%00", "ending_before"),
])
def test_bad_list_parameters_name_the_field(api, query, param):
    response = api.get(f"/v1/payment_intents?{query}")
    assert response.status_code in (400, 404)
    assert response.json()["error"]["param"] == param


def test_unknown_urls_get_stripes_error_shape(api):
    response = api.get("/v1/nothing_here")
    assert response.status_code == 404 and response.json()["error"]["type"] == "invalid_request_error"
    assert api.get("/v1/payment_intents/pi_nope").json()["error"]["code"] == "resource_missing"


@pytest.mark.django_db(transaction=True)
def test_a_key_still_in_use_by_another_request_gets_409(api, merchant):
    """While the first request with a key runs (it holds the key's advisory lock), a second one is refused at once."""
    import psycopg
    from django.db import connection

    from merchants.idempotency import _lock_id

    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=False) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(merchant.pk, False, "busy-key")])
        response = create(api, HTTP_IDEMPOTENCY_KEY="busy-key")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    assert PaymentIntent.objects.count() == 0
    assert create(api, HTTP_IDEMPOTENCY_KEY="busy-key").status_code == 200
