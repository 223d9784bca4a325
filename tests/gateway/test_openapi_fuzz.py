"""schemathesis generates requests from our own OpenAPI schema: whatever it sends, the API never answers 5xx."""
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def fuzz_headers(networks, wallet, secret_key):
    # In-process WSGI calls would close the test's connection at the end of each request, as Django's own test
    # client prevents: do the same here so every request runs inside the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {"Authorization": f"Bearer {secret_key}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_server_errors(case, fuzz_headers):
    response = case.call(headers=fuzz_headers)
    assert response.status_code < 500, (case.method, case.path, case.body, response.text[:500])
    if response.status_code >= 400:
        assert "error" in response.json()


def test_schema_and_docs_are_served_offline(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"https://" not in docs.content.split(b"<body")[0].replace(b"https://docs.stripe", b"")
