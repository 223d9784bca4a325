"""The per-process memory of API keys (GATEWAY_API_KEY_CACHE_SECONDS, production: 2 s): what it saves and its limits."""
from datetime import timedelta

import pytest
from django.utils import timezone

from merchants import selectors, services


@pytest.fixture
def remembered(settings):
    settings.GATEWAY_API_KEY_CACHE_SECONDS = 2
    selectors.api_key_cache_clear()
    yield
    selectors.api_key_cache_clear()


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(selectors.time, "monotonic", lambda: now[0])
    return now


def test_a_remembered_key_is_not_read_again(remembered, merchant, make_key, django_assert_num_queries):
    raw = make_key(merchant)
    with django_assert_num_queries(1):
        first = selectors.api_key_active_by_raw(raw)
    with django_assert_num_queries(0):
        again = selectors.api_key_active_by_raw(raw)
    assert again is first and again.merchant == merchant


def test_a_revoked_key_stops_working_once_the_memory_expires(remembered, clock, merchant, make_key):
    raw = make_key(merchant)
    key = selectors.api_key_active_by_raw(raw)
    services.api_key_revoke(api_key=key)

    clock[0] += 1.9
    assert selectors.api_key_active_by_raw(raw) is not None  # the documented window

    clock[0] += 0.2
    assert selectors.api_key_active_by_raw(raw) is None


def test_an_expiry_known_when_the_key_was_read_is_checked_on_every_use(remembered, merchant, make_key):
    raw = make_key(merchant)
    key = selectors.api_key_active_by_raw(raw)
    key.expires_at = timezone.now() - timedelta(microseconds=1)  # as a rolled key's grace period ends

    assert selectors.api_key_active_by_raw(raw) is None


def test_unknown_keys_are_never_remembered(remembered, merchant, django_assert_num_queries):
    with django_assert_num_queries(2):
        assert selectors.api_key_active_by_raw("sk_test_" + "x" * 40) is None
        assert selectors.api_key_active_by_raw("sk_test_" + "x" * 40) is None


def test_without_a_memory_every_request_reads_the_key(settings, merchant, make_key, django_assert_num_queries):
    settings.GATEWAY_API_KEY_CACHE_SECONDS = 0
    raw = make_key(merchant)
    with django_assert_num_queries(2):
        selectors.api_key_active_by_raw(raw)
        selectors.api_key_active_by_raw(raw)
