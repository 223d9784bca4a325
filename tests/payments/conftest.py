"""Fixtures of the payments tests, and the helpers of the tests that pay intents on a real anvil chain: the API
creates an intent, the test helper really sends the deposit, the scanner records it and the payments side applies
it (`settle`). Those tests use a transactional database: the scanner's steps commit, as in production. The
scanner's after-commit task message is captured (nothing reaches the broker); `settle` applies the activity itself,
as the worker would."""
import time

import pytest
from django.conf import settings
from django.test import override_settings

from gateway.celery import app as celery_app
from payments import funding
from payments.models import Event
from tests.chain import anvil_chain, register_devnet_for_tests  # noqa: F401 (fixture)
from wallets.chain.scanner import log_ranges_forget, scan_step
from wallets.devchain import rpc
from wallets.networks import clear_network_cache


@pytest.fixture
def ready(networks, wallet):
    """A gateway that can take payments in test mode."""


@pytest.fixture
def devnet_chain(anvil_chain):  # noqa: F811
    """The chain `devnet` registers: the session's; a module that rewrites the chain's history (reorgs) overrides
    this fixture with a chain of its own."""
    return anvil_chain


@pytest.fixture
def devnet(devnet_chain, transactional_db, networks, wallet, monkeypatch):
    log_ranges_forget()
    monkeypatch.setattr(celery_app, "send_task", lambda *a, **kw: None)
    with override_settings(GATEWAY_DEVCHAIN_RPC_URL=devnet_chain.rpc_url):
        network = register_devnet_for_tests(devnet_chain)
        clear_network_cache()
        yield network
    log_ranges_forget()


def settle(network, chain, *, mine_blocks: int = 0) -> list:
    """Mine `mine_blocks`, scan until caught up, apply what the scanner queued; returns the scanner's steps."""
    if mine_blocks:
        rpc(chain.rpc_url, "anvil_mine", [hex(mine_blocks)])
    steps = []
    for _ in range(50):
        steps.append(step := scan_step(network=network))
        assert not step.back_off, step
        if step.caught_up:
            break
    funding.address_activity_process()
    return steps


def create(api, amount=1999):
    response = api.post("/v1/payment_intents", {
        "amount": amount, "currency": "usd",
        "payment_method_options[crypto][deposit_options][networks][]": "bsc",
    })
    assert response.status_code == 200, response.json()
    return response.json()


def simulate(api, intent_id, **params):
    """The test helper; when it sent a transfer, wait until the transfer is mined (anvil mines it at once, but the
    answer may come before its receipt)."""
    response = api.post(f"/v1/test_helpers/payment_intents/{intent_id}/simulate_crypto_deposit",
                        {"network": "bsc", "token_currency": "usdt", **params})
    if response.status_code == 200:
        mined(settings.GATEWAY_DEVCHAIN_RPC_URL, response.json()["test_helper"]["transaction_hash"])
    return response


def mined(rpc_url: str, tx_hash: str) -> dict:
    deadline = time.monotonic() + 30
    while (receipt := rpc(rpc_url, "eth_getTransactionReceipt", [tx_hash])) is None:
        assert time.monotonic() < deadline, f"{tx_hash} not mined"
        time.sleep(0.02)
    return receipt


def get(api, intent_id):
    return api.get(f"/v1/payment_intents/{intent_id}").json()


def charges_of(api, intent_id):
    return api.get("/v1/charges", {"payment_intent": intent_id}).json()["data"]


def event_types(object_id):
    return list(Event.objects.filter(object_id=object_id).order_by("sequence").values_list("type", flat=True))
