"""End to end on a real chain: the API creates an intent, the test helper really sends the deposit on anvil, the
scanner records it, the payments side applies it, and the API shows the intent and its Charge.

Transactional database: the scanner's steps commit, as in production. The scanner's after-commit task message is
captured (nothing reaches the broker); the test applies the activity itself, as the worker would."""
import pytest
from django.test import override_settings

from payments import funding
from payments.models import Event
from tests.chain import anvil_chain, register_devnet_for_tests  # noqa: F401
from wallets.chain import scanner
from wallets.chain.scanner import log_ranges_forget, scan_step
from wallets.devchain import rpc
from wallets.networks import clear_network_cache


@pytest.fixture
def devnet(anvil_chain, transactional_db, networks, wallet, monkeypatch):
    log_ranges_forget()
    monkeypatch.setattr(scanner.celery_app, "send_task", lambda *a, **kw: None)
    with override_settings(GATEWAY_DEVCHAIN_RPC_URL=anvil_chain.rpc_url):
        network = register_devnet_for_tests(anvil_chain)
        clear_network_cache()
        yield network
    log_ranges_forget()


def settle(network, chain, *, mine_blocks: int = 0) -> None:
    """Mine `mine_blocks`, scan until caught up, apply what the scanner queued."""
    if mine_blocks:
        rpc(chain.rpc_url, "anvil_mine", [hex(mine_blocks)])
    for _ in range(50):
        step = scan_step(network=network)
        assert not step.back_off, step
        if step.caught_up:
            break
    funding.address_activity_process()


def create(api, amount=1999):
    response = api.post("/v1/payment_intents", {
        "amount": amount, "currency": "usd",
        "payment_method_options[crypto][deposit_options][networks][]": "bsc",
    })
    assert response.status_code == 200, response.json()
    return response.json()


def simulate(api, intent_id, **params):
    return api.post(f"/v1/test_helpers/payment_intents/{intent_id}/simulate_crypto_deposit",
                    {"network": "bsc", "token_currency": "usdt", **params})


def test_a_simulated_deposit_moves_the_intent_to_processing_then_succeeded_with_a_charge(api, devnet, anvil_chain):
    settle(devnet, anvil_chain)  # the cursor starts at the head
    intent = create(api)
    response = simulate(api, intent["id"])
    assert response.status_code == 200, response.json()
    tx_hash = response.json()["test_helper"]["transaction_hash"]

    settle(devnet, anvil_chain)  # in a block, not final yet (finalized = head - 2)
    seen = api.get(f"/v1/payment_intents/{intent['id']}").json()
    assert seen["status"] == "processing" and seen["amount_received"] == 0

    settle(devnet, anvil_chain, mine_blocks=2)
    paid = api.get(f"/v1/payment_intents/{intent['id']}").json()
    assert paid["status"] == "succeeded" and paid["amount_received"] == 1999
    charges = api.get("/v1/charges", {"payment_intent": intent["id"]}).json()["data"]
    assert len(charges) == 1 and paid["latest_charge"] == charges[0]["id"]
    crypto = charges[0]["payment_method_details"]["crypto"]
    assert crypto["transaction_hash"] == tx_hash and crypto["network"] == "bsc" and crypto["token_currency"] == "usdt"
    assert api.get(f"/v1/charges/{charges[0]['id']}").json()["id"] == charges[0]["id"]
    types = list(Event.objects.filter(object_id=intent["id"]).order_by("sequence").values_list("type", flat=True))
    assert types == ["payment_intent.created", "payment_intent.requires_action", "payment_intent.processing",
                     "payment_intent.succeeded"]
    assert Event.objects.filter(type="charge.succeeded", object_id=charges[0]["id"]).count() == 1

    # scanning and applying again changes nothing
    settle(devnet, anvil_chain, mine_blocks=1)
    assert api.get(f"/v1/payment_intents/{intent['id']}").json() == paid
    again = api.get("/v1/charges", {"payment_intent": intent["id"]}).json()["data"]
    assert [c["id"] for c in again] == [charges[0]["id"]]
    assert again[0]["confirmations"] == charges[0]["confirmations"] + 1


def test_two_partial_deposits_add_up(api, devnet, anvil_chain):
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    assert simulate(api, intent["id"], amount=4 * 10**18).status_code == 200  # 4.00 of 10.00 USDT
    settle(devnet, anvil_chain, mine_blocks=2)
    partial = api.get(f"/v1/payment_intents/{intent['id']}").json()
    assert partial["status"] == "requires_action" and partial["amount_received"] == 400
    assert simulate(api, intent["id"], amount=6 * 10**18).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    paid = api.get(f"/v1/payment_intents/{intent['id']}").json()
    assert paid["status"] == "succeeded" and paid["amount_received"] == 1000
    assert len(api.get("/v1/charges", {"payment_intent": intent["id"]}).json()["data"]) == 2


def test_the_test_helper_refuses_bad_input_and_live_keys(api, devnet, merchant, make_key):
    intent = create(api)
    bad = simulate(api, intent["id"], network="nowhere")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "network"
    bad = simulate(api, intent["id"], token_currency="dai")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "token_currency"
    bad = simulate(api, intent["id"], amount="-5")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "amount"
    assert simulate(api, "pi_doesnotexist").status_code == 404
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(merchant, livemode=True)}")
    assert simulate(api, intent["id"]).status_code in (400, 404)
