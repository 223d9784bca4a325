import pytest
from rest_framework.test import APIClient

from merchants import services as merchant_services
from tests.merchants.factories import MerchantFactory


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


@pytest.fixture
def api(secret_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_key}")
    return client
