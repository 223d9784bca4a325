from urllib.parse import urlencode

import pytest
from rest_framework.test import APIClient

from merchants import services as merchant_services
from tests.merchants.factories import MerchantFactory
from tests.otp import login_verified
from wallets.models import MasterSeed, Network, Token
from wallets.networks import clear_network_cache, seed_networks


@pytest.fixture(autouse=True)
def _content_types_fresh():
    """ContentType's process cache emptied before each test: a transactional test's flush (or a migration test)
    re-creates the content types with new ids, and a later test of the same worker must not write the old ones
    (admin log entries, audit records)."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


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


def pytest_collection_modifyitems(items):
    """schemathesis's items (one per API operation) all show as `test_no_server_errors`: pytest 9 builds a node id
    from the name's parameters, which schemathesis 4 puts in the name instead. pytest-xdist schedules by node id, so
    all but one of them would silently not run; each gets its operation in its id again."""
    from _pytest.nodeid import NodeId

    for item in items:
        label = getattr(item, "operation_label", None)
        if label and not item.nodeid.endswith("]"):
            item._id = NodeId.parse(f"{item.nodeid}[{label}]")
    seen, twice = set(), set()
    for item in items:
        (twice if item.nodeid in seen else seen).add(item.nodeid)
    if twice:
        raise pytest.UsageError(f"tests with the same node id (pytest-xdist would run one of each): {sorted(twice)}")
