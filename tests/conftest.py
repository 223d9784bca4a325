from urllib.parse import urlencode

import pytest
from rest_framework.test import APIClient

from merchants import services as merchant_services
from tests.merchants.factories import MerchantFactory
from tests.otp import login_verified
from wallets.models import MasterSeed, Network, Token
from wallets.networks import clear_network_cache, seed_networks


@pytest.fixture
def networks(db):
    """The seeded networks (a transactional test's flush removes the migration's rows, so seed again)."""
    seed_networks(Network, Token)
    clear_network_cache()
    yield
    clear_network_cache()


@pytest.fixture
def wallet(db):
    from wallets.services import wallet_init

    return MasterSeed.objects.first() or wallet_init()


@pytest.fixture
def merchant(db):
    return MerchantFactory()


@pytest.fixture
def make_key():
    def make(merchant, *, livemode=False, kind="secret", permissions=None):
        return merchant_services.api_key_create(
            merchant=merchant, kind=kind, livemode=livemode, permissions=permissions
        ).raw

    return make


@pytest.fixture
def secret_key(merchant, make_key):
    return make_key(merchant)


class FormClient(APIClient):
    """Posts dicts form-encoded, as Stripe's SDKs do (APIClient's default would be multipart)."""

    def post(self, path, data=None, content_type=None, **extra):
        if isinstance(data, dict) and content_type is None:
            data = urlencode(data, doseq=True)
            content_type = "application/x-www-form-urlencoded"
        return super().post(path, data=data or "", content_type=content_type or "application/x-www-form-urlencoded",
                            **extra)


@pytest.fixture
def anon():
    return FormClient()


@pytest.fixture
def api(secret_key):
    client = FormClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    return client


@pytest.fixture
def admin_client(db, admin_user):
    """pytest-django's admin client, with the session verified by a TOTP code as the admin requires (a client of its
    own: some modules name another fixture `client`)."""
    from django.test import Client

    staff = Client()
    login_verified(staff, admin_user)
    return staff


@pytest.fixture
def rate_limits(settings):
    """Rate-limit counters emptied before and after the test (the suite's own limits are high); lower a limit on the
    `settings` this returns, e.g. `rate_limits.GATEWAY_RATE_LIMIT_TEST_READ = "3/h"`."""
    from gateway import ratelimit

    def clear():
        client = ratelimit._redis()
        keys = list(client.scan_iter(ratelimit.PREFIX + "*"))
        if keys:
            client.delete(*keys)

    clear()
    yield settings
    clear()
