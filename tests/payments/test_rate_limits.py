"""Per-IP limits on the hosted checkout (page and status poll) and the test helpers' own per-key limit."""
import pytest

from payments.services import PaymentIntentInput, payment_intent_create
from wallets.models import Transfer

pytestmark = pytest.mark.usefixtures("ready")


def make_intent(merchant):
    return payment_intent_create(
        merchant=merchant, livemode=False, data=PaymentIntentInput(amount=1234, currency="usd", networks=["bsc"]),
    )


def test_the_status_poll_is_limited_per_ip_in_stripes_shape(client, merchant, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP = "3/h"
    intent = make_intent(merchant)
    url = f"/pay/{intent.client_secret}/status"

    assert [client.get(url).status_code for _ in range(3)] == [200] * 3
    response = client.get(url)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert 1 <= int(response["Retry-After"]) <= 3600 and response["Cache-Control"] == "no-store"
    assert client.get(url, REMOTE_ADDR="198.51.100.20").status_code == 200  # another customer


def test_the_page_and_unknown_secrets_count_too(client, merchant, rate_limits, django_assert_num_queries):
    rate_limits.GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP = "3/h"
    intent = make_intent(merchant)

    assert client.get(f"/pay/{intent.client_secret}").status_code == 200
    assert client.get("/pay/pi_nope_secret_guess").status_code == 404
    assert client.get("/pay/pi_nope_secret_guess/status").status_code == 404
    with django_assert_num_queries(0):  # refused before the intent is looked up
        response = client.get(f"/pay/{intent.client_secret}")

    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response["Content-Type"].startswith("text/plain")


def test_test_helpers_have_a_lower_limit_of_their_own(api, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_TEST_HELPERS = "2/h"
    url = "/v1/test_helpers/payment_intents/pi_missing/simulate_crypto_deposit"
    body = {"network": "bsc", "token_currency": "usdt"}
    transfers = Transfer.objects.count()

    assert [api.post(url, body).status_code for _ in range(2)] == [404, 404]
    response = api.post(url, body)

    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "rate_limit" and 1 <= int(response["Retry-After"]) <= 3600
    assert Transfer.objects.count() == transfers
    assert api.get("/v1/payment_intents").status_code == 200  # the key's other calls go on
    assert api.post("/v1/payment_intents", {"amount": "100", "currency": "usd"}).status_code == 200
