"""Rate limits on the /v1 API (gateway/ratelimit.py): per API key in Stripe's shape, per IP for bad keys."""
import time

import pytest
from django.test import override_settings

from gateway import ratelimit
from gateway.ratelimit import Rate, parse_rate
from payments.models import Event, PaymentIntent

pytestmark = pytest.mark.usefixtures("networks", "wallet")

STRIPE_429 = {
    "type": "invalid_request_error",
    "code": "rate_limit",
    "message": "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.",
    "doc_url": "https://docs.stripe.com/error-codes/rate_limit",
}


def create(api):
    return api.post("/v1/payment_intents", {"amount": "1234", "currency": "usd"})


def assert_rate_limited(response, *, window: int):
    assert response.status_code == 429, response.content
    assert response.json() == {"error": STRIPE_429}
    assert 1 <= int(response["Retry-After"]) <= window
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("text, expected", [
    ("100/s", Rate(100, 1)), ("60/10s", Rate(60, 10)), ("20/m", Rate(20, 60)), ("5/2min", Rate(5, 120)),
    ("1000/h", Rate(1000, 3600)), (" 7 / d ", Rate(7, 86400)), ("off", None), ("", None), (None, None),
])
def test_rates_are_read_from_their_settings_text(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["100", "1.5/s", "10/fortnight", "-1/s", "/s"])
def test_a_malformed_rate_is_refused_clearly(text):
    with pytest.raises(ValueError, match="Invalid rate limit"):
        parse_rate(text)


def test_a_key_over_its_read_limit_gets_stripes_429_with_retry_after(api, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_TEST_READ = "3/h"

    for _ in range(3):
        assert api.get("/v1/payment_intents").status_code == 200
    assert_rate_limited(api.get("/v1/payment_intents"), window=3600)
    assert_rate_limited(api.get("/v1/charges"), window=3600)  # one limit for every read of the key


def test_writes_have_their_own_limit_and_a_refused_write_writes_nothing(api, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_TEST_WRITE = "2/h"
    assert create(api).status_code == 200
    assert create(api).status_code == 200
    before = (PaymentIntent.objects.count(), Event.objects.count())

    assert_rate_limited(create(api), window=3600)

    assert (PaymentIntent.objects.count(), Event.objects.count()) == before
    assert api.get("/v1/payment_intents").status_code == 200  # reads are counted apart


def test_each_key_has_its_own_counter_and_live_keys_their_own_limit(merchant, make_key, rate_limits, anon):
    rate_limits.GATEWAY_RATE_LIMIT_TEST_READ = "1/h"
    rate_limits.GATEWAY_RATE_LIMIT_LIVE_READ = "2/h"
    first, second, live = make_key(merchant), make_key(merchant), make_key(merchant, livemode=True)

    def get(key):
        return anon.get("/v1/payment_intents", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert get(first).status_code == 200
    assert get(first).status_code == 429
    assert get(second).status_code == 200
    assert [get(live).status_code for _ in range(3)] == [200, 200, 429]


def test_the_limit_is_lifted_when_its_window_ends(api, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_TEST_READ = "1/2s"
    # Two requests land in one window sooner or later, however slow the machine.
    statuses = [api.get("/v1/payment_intents").status_code for _ in range(30)]
    assert 429 in statuses
    deadline = time.monotonic() + 60
    while api.get("/v1/payment_intents").status_code == 429:
        assert time.monotonic() < deadline, "the limit was never lifted"
        time.sleep(0.2)


@pytest.mark.parametrize("header", [
    None, "Bearer ", "Bearer sk_test_short", "Token abc", "Bearer sk_test_" + "x" * 40,
])
def test_an_ip_sending_bad_keys_gets_429_after_the_limit(anon, rate_limits, header):
    rate_limits.GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP = "3/h"
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    assert [anon.get("/v1/payment_intents", **extra).status_code for _ in range(3)] == [401] * 3
    assert_rate_limited(anon.get("/v1/payment_intents", **extra), window=3600)


def test_an_ip_over_its_bad_key_limit_is_refused_before_any_key_is_looked_up(
    anon, secret_key, rate_limits, django_assert_num_queries
):
    rate_limits.GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP = "2/h"
    unknown = "sk_test_" + "y" * 40
    for _ in range(2):
        assert anon.get("/v1/payment_intents", HTTP_AUTHORIZATION=f"Bearer {unknown}").status_code == 401

    with django_assert_num_queries(0):
        response = anon.get("/v1/payment_intents", HTTP_AUTHORIZATION=f"Bearer {unknown}")
    assert_rate_limited(response, window=3600)
    # The IP is refused whatever key it shows until its window ends.
    assert anon.get("/v1/payment_intents", HTTP_AUTHORIZATION=f"Bearer {secret_key}").status_code == 429


def test_good_keys_are_not_counted_as_bad(api, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP = "1/h"
    assert [api.get("/v1/payment_intents").status_code for _ in range(5)] == [200] * 5


def test_other_ips_are_not_held_back_by_one_sending_bad_keys(anon, secret_key, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP = "1/h"
    anon.get("/v1/payment_intents", REMOTE_ADDR="203.0.113.7")
    assert anon.get("/v1/payment_intents", REMOTE_ADDR="203.0.113.7").status_code == 429
    response = anon.get("/v1/payment_intents", REMOTE_ADDR="203.0.113.8", HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    assert response.status_code == 200


@pytest.mark.parametrize("a, b, same", [
    ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one /64: one client
    ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
    ("::ffff:198.51.100.1", "198.51.100.1", True),
])
def test_ipv6_clients_are_counted_by_their_64(rf, a, b, same):
    assert (ratelimit.client_ip(rf.get("/", REMOTE_ADDR=a)) == ratelimit.client_ip(rf.get("/", REMOTE_ADDR=b))) is same


def test_a_request_without_a_peer_address_is_still_counted(rf):
    request = rf.get("/")
    del request.META["REMOTE_ADDR"]
    assert ratelimit.client_ip(request) == "unknown"


def test_requests_go_through_when_redis_is_unreachable(api, rate_limits, monkeypatch):
    rate_limits.GATEWAY_RATE_LIMIT_TEST_READ = "1/h"
    monkeypatch.setattr(ratelimit, "_client", None)
    with override_settings(GATEWAY_RATE_LIMIT_REDIS_URL="redis://127.0.0.1:1/0"):
        assert [api.get("/v1/payment_intents").status_code for _ in range(3)] == [200] * 3
    monkeypatch.setattr(ratelimit, "_client", None)
