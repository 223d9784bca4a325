"""The hosted checkout when money does not simply pay the intent in one go, on the real devnet: a partial payment
(what came, exactly what is left, the QR code and EIP-681 link of the rest), an overpayment, a late payment, and the
receipt of a paid intent. Also: only watched networks are offered, and the page speaks the browser's language."""
import re

import pytest
from django.utils.html import escape
from eth_utils import to_checksum_address

from payments.models import PaymentIntent
from payments.pricing import erc20_payment_uri
from payments.services import PaymentIntentInput, payment_intent_create
from tests.payments.conftest import create, get, settle, simulate
from tests.payments.test_chain_payments import expire, send_token
from wallets.models import Network
from wallets.networks import active_networks, clear_network_cache, is_watched

USDT = 10**18  # the devnet's test USDT and USDC have 18 decimals


def page(client, intent, query="?network=bsc&token=usdt", **headers):
    return client.get(f"/pay/{intent['client_secret']}{query}", **headers)


def status(client, intent, query="?network=bsc&token=usdt"):
    return client.get(f"/pay/{intent['client_secret']}/status{query}").json()


def address_of(intent) -> str:
    return to_checksum_address(intent["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"])


def token_address(anvil_chain, currency):
    return anvil_chain.tokens[currency]


def paid_partly(api, devnet, anvil_chain, *, amount_minor, sent_base_units):
    settle(devnet, anvil_chain)
    intent = create(api, amount=amount_minor)
    assert simulate(api, intent["id"], amount=sent_base_units).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    return intent


def test_a_partly_paid_intent_shows_what_came_and_exactly_what_is_left(client, api, devnet, anvil_chain):
    # Given 12.000000000000000007 of 20 USDT received (final, credited)
    intent = paid_partly(api, devnet, anvil_chain, amount_minor=2000, sent_base_units=12 * USDT + 7)
    assert get(api, intent["id"])["status"] == "requires_action"
    left = 8 * USDT - 7
    uri = erc20_payment_uri(token_address=token_address(anvil_chain, "usdt"), chain_id=devnet.chain_id,
                            recipient=address_of(intent), amount_base_units=left)
    assert uri.endswith("uint256=7.999999999999999993e18")

    # the page says so, in the token, to the last base unit, with the same address and the rest's QR and link
    body = page(client, intent).content.decode()
    assert ("Received 12.000000000000000007 USDT of 20 USDT; send exactly 7.999999999999999993 USDT more."
            in body)
    assert '<span class="value" id="token-amount">7.999999999999999993 USDT</span>' in body
    assert 'data-copy="7.999999999999999993"' in body
    assert f'id="open-wallet" href="{escape(uri)}"' in body
    assert address_of(intent) in body
    assert 'aria-label="QR code: pay 7.999999999999999993 USDT on Local devnet (anvil)"' in body
    assert '"amount": "7999999999999999993"' in body  # what the browser wallet sends: exact base units, a string

    # and so does the status the page polls, with the QR code of the rest
    live = status(client, intent)
    assert live["status"] == "requires_action" and live["amount_received"] == 1200
    assert live["pay"]["progress"] == (
        "Received 12.000000000000000007 USDT of 20 USDT; send exactly 7.999999999999999993 USDT more.")
    assert live["pay"]["amount"] == "7.999999999999999993"
    assert live["pay"]["amount_base_units"] == str(left)
    assert live["pay"]["payment_uri"] == uri
    qr = live["pay"]["qr_svg"]
    assert qr.startswith("<svg") and "QR code: pay 7.999999999999999993 USDT" in qr

    # In the other token, the part already paid is told by its worth and the rest is exact in that token
    other = page(client, intent, "?network=bsc&token=usdc").content.decode()
    assert "Received $12.00 of $20.00; send exactly 7.999999999999999993 USDC more." in other

    # When the rest arrives, the intent is paid
    assert simulate(api, intent["id"], amount=left).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    assert status(client, intent)["status"] == "succeeded"


def test_an_overpayment_says_the_surplus_is_recorded_and_refundable(client, api, devnet, anvil_chain, merchant):
    merchant.name = "Acme Coffee"
    merchant.save(update_fields=["name"])
    intent = paid_partly(api, devnet, anvil_chain, amount_minor=1000, sent_base_units=12 * USDT + USDT // 2)
    assert get(api, intent["id"])["status"] == "succeeded"

    text = ("You sent 2.5 USDT more than the amount due. The extra is recorded, and Acme Coffee can refund it to "
            "you.")
    assert text in page(client, intent).content.decode()
    assert status(client, intent)["notice"] == {"kind": "overpaid", "text": text}


@pytest.mark.parametrize("accept", [False, True])
def test_a_late_payment_says_it_came_late_and_what_the_merchant_does(client, api, devnet, anvil_chain, merchant,
                                                                      accept):
    merchant.name = "Acme Coffee"
    merchant.accept_late_payments = accept
    merchant.save(update_fields=["name", "accept_late_payments"])
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    expire(api, intent["id"])
    assert simulate(api, intent["id"], amount=5 * USDT).status_code == 200  # half, after the expiry
    settle(devnet, anvil_chain, mine_blocks=2)
    assert get(api, intent["id"])["status"] == "canceled"

    body = page(client, intent).content.decode()
    live = status(client, intent)

    assert 'data-state="expired"' in body and "This payment has expired" in body
    assert live["notice"]["kind"] == "late"
    assert live["notice"]["text"].startswith("We received 5 USDT after this payment expired.")
    if accept:
        assert "Acme Coffee accepts late payments of the full amount" in live["notice"]["text"]
    else:
        assert ("The funds are recorded and Acme Coffee does not take payments after they close: Acme Coffee will "
                "contact you to refund them according to its policy.") in live["notice"]["text"]
    assert escape(live["notice"]["text"]) in body


def test_the_receipt_of_a_paid_intent_links_its_transactions(client, api, devnet, anvil_chain, merchant):
    merchant.name = "Acme Coffee"
    merchant.save(update_fields=["name"])
    Network.objects.filter(pk=devnet.pk).update(explorer_url="https://explorer.example/")
    clear_network_cache()
    settle(devnet, anvil_chain)
    response = api.post("/v1/payment_intents", {
        "amount": 1000, "currency": "usd", "return_url": "https://shop.example/orders/7",
        "payment_method_options[crypto][deposit_options][networks][]": "bsc",
    })
    intent = response.json()
    first = simulate(api, intent["id"], amount=4 * USDT).json()["test_helper"]["transaction_hash"]
    second = send_token(anvil_chain, token="usdt", to=address_of(intent).lower(), amount=6 * USDT)
    settle(devnet, anvil_chain, mine_blocks=2)
    assert get(api, intent["id"])["status"] == "succeeded"

    body = page(client, intent).content.decode()
    receipt = status(client, intent)["receipt_html"]

    for html in (body, receipt):
        assert "Receipt" in html and "Acme Coffee" in html and "$10.00" in html
        assert "4 USDT · Local devnet (anvil)" in html and "6 USDT · Local devnet (anvil)" in html
        for tx_hash in (first, second):
            assert f'href="https://explorer.example/tx/{tx_hash}"' in html
        assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+">[^<]+ UTC</time>', html)
    assert 'id="print-receipt"' in body and "Print receipt" in body
    assert 'id="return-link" href="https://shop.example/orders/7"' in body

    # A network without an explorer (the devnet as registered): the hashes, unlinked
    Network.objects.filter(pk=devnet.pk).update(explorer_url="")
    plain = page(client, intent).content.decode()
    assert f'<span class="tx-hash">{first}</span>' in plain and "/tx/" not in plain


# --- Only networks the chain watcher watches ---------------------------------------------------------------------

@pytest.fixture
def rule_on(settings, networks, wallet):
    settings.GATEWAY_NETWORKS_REQUIRE_RPC = True
    clear_network_cache()
    yield
    clear_network_cache()


def test_a_network_is_watched_when_it_has_an_rpc_url(rule_on, monkeypatch, settings):
    sepolia = Network.objects.get(code="sepolia")
    assert not is_watched(sepolia)
    monkeypatch.setenv(sepolia.rpc_env, "http://127.0.0.1:9")
    assert is_watched(sepolia)
    assert is_watched(Network(code="devnet", rpc_env="GATEWAY_RPC_DEVNET"))  # the devnet's URL is a setting
    settings.GATEWAY_NETWORKS_REQUIRE_RPC = False
    assert is_watched(Network.objects.get(code="polygon-amoy"))


def test_with_the_devnet_registered_as_in_make_run_only_the_devnet_is_offered(settings, devnet, api):
    settings.GATEWAY_NETWORKS_REQUIRE_RPC = True
    clear_network_cache()
    assert {name: a.network.code for name, a in active_networks(livemode=False).items()} == {"bsc": "devnet"}
    intent = api.post("/v1/payment_intents", {"amount": 1000, "currency": "usd"}).json()
    assert intent["payment_method_options"]["crypto"]["deposit_options"]["networks"] == ["bsc"]
    clear_network_cache()


def test_new_intents_list_only_watched_networks(rule_on, monkeypatch, api, merchant):
    # Given seeded test networks of which only Ethereum Sepolia has an RPC URL
    monkeypatch.setenv(Network.objects.get(code="sepolia").rpc_env, "http://127.0.0.1:9")
    clear_network_cache()
    assert list(active_networks(livemode=False)) == ["ethereum"]

    # an intent without networks gets that one only
    response = api.post("/v1/payment_intents", {"amount": 1000, "currency": "usd"})
    assert response.status_code == 200, response.json()
    intent = response.json()
    assert intent["payment_method_options"]["crypto"]["deposit_options"]["networks"] == ["ethereum"]
    assert list(intent["next_action"]["crypto_display_details"]["deposit_addresses"]) == ["ethereum"]

    # and asking for an unwatched one is the API's error naming the field, with nothing written
    count = PaymentIntent.objects.count()
    refused = api.post("/v1/payment_intents", {
        "amount": 1000, "currency": "usd", "payment_method_options[crypto][deposit_options][networks][]": "polygon"})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "payment_method_options[crypto][deposit_options][networks]"
    assert "not available in test mode (available: ethereum)" in refused.json()["error"]["message"]
    assert PaymentIntent.objects.count() == count


def test_the_checkout_offers_only_watched_networks_of_an_intent(settings, networks, wallet, merchant, client,
                                                                monkeypatch):
    # Given an intent on two networks made while neither needed an RPC URL
    intent = payment_intent_create(merchant=merchant, livemode=False, data=PaymentIntentInput(
        amount=1234, currency="usd", networks=["bsc", "ethereum"]))
    secret = intent.client_secret
    assert "BNB Smart Chain Testnet" in client.get(f"/pay/{secret}").content.decode()

    # When only Ethereum Sepolia is watched now
    settings.GATEWAY_NETWORKS_REQUIRE_RPC = True
    monkeypatch.setenv(Network.objects.get(code="sepolia").rpc_env, "http://127.0.0.1:9")
    clear_network_cache()
    body = client.get(f"/pay/{secret}?network=bsc").content.decode()

    # then the page offers that one only, even when the query names the other
    assert ">Ethereum Sepolia</a>" in body and "BNB Smart Chain" not in body and "on Ethereum Sepolia" in body

    # and with none watched, no address is offered at all
    monkeypatch.delenv(Network.objects.get(code="sepolia").rpc_env)
    clear_network_cache()
    none = client.get(f"/pay/{secret}").content.decode()
    assert 'id="pay-block"' not in none and intent.deposit_address.address not in none.lower()
    clear_network_cache()


# --- The customer's language --------------------------------------------------------------------------------------

def test_the_checkout_speaks_german_to_a_german_browser_and_nothing_else_changes(client, api, devnet, anvil_chain):
    intent = paid_partly(api, devnet, anvil_chain, amount_minor=2000, sent_base_units=12 * USDT)

    response = page(client, intent, HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5")
    body = response.content.decode()

    assert response["Content-Language"] == "de" and "Accept-Language" in response["Vary"]
    assert '<html lang="de">' in body
    assert "Warten auf Zahlung" in body and "Senden Sie genau" in body and "Mit Browser-Wallet bezahlen" in body
    assert "12 USDT von 20 USDT erhalten; senden Sie genau 8 USDT mehr." in body
    assert '"requires_action": "Warten auf Zahlung"' in body  # the script's words, in the page's JSON
    live = client.get(f"/pay/{intent['client_secret']}/status?network=bsc&token=usdt",
                      HTTP_ACCEPT_LANGUAGE="de").json()
    assert live["pay"]["progress"] == "12 USDT von 20 USDT erhalten; senden Sie genau 8 USDT mehr."
    assert "Wir finden diese Zahlung nicht" in client.get("/pay/nope", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    # An unsupported language, and no header: English
    for headers in ({"HTTP_ACCEPT_LANGUAGE": "ja"}, {}):
        english = page(client, intent, **headers).content.decode()
        assert '<html lang="en">' in english and "Waiting for payment" in english

    # The API stays English whatever the browser asks, also on the thread that just served German
    page(client, intent, HTTP_ACCEPT_LANGUAGE="de")
    error = api.get("/v1/payment_intents/pi_doesnotexist", HTTP_ACCEPT_LANGUAGE="de")
    assert error.status_code == 404 and "No such payment_intent" in error.json()["error"]["message"]
    assert "Content-Language" not in error
