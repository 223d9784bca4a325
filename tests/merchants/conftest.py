from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from merchants import selectors


@pytest.fixture
def key_works():
    """Whether a raw key authenticates against the API (a list call with Django's test client)."""
    def works(raw: str) -> bool:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        status = client.get("/v1/payment_intents").status_code
        assert status in (200, 401), status
        return status == 200

    return works


@pytest.fixture
def key_clock(monkeypatch):
    """Moves the clock that API key expiry is checked against (merchants.selectors) to a given time."""
    def move(when):
        monkeypatch.setattr(selectors, "timezone", SimpleNamespace(now=lambda: when))

    return move
