"""The hosted checkout page and its status endpoint, through Django's test client."""
import re

import pytest
from django.utils.html import escape
from eth_utils import to_checksum_address

from payments.models import PaymentIntent
from payments.presenters import deposit_addresses, unix
from payments.services import PaymentIntentInput, payment_intent_cancel, payment_intent_create
from payments.views import format_base_units, format_fiat
from tests.merchants.factories import MerchantFactory

pytestmark = pytest.mark.usefixtures("ready")


def make_intent(merchant, *, networks=("bsc",), amount=1234, **fields):
    return payment_intent_create(
        merchant=merchant, livemode=False,
        data=PaymentIntentInput(amount=amount, currency="usd", networks=list(networks), **fields),
    )


def page(client, intent, query=""):
    return client.get(f"/pay/{intent.client_secret}{query}")


def text(response) -> str:
    return response.content.decode()


def token_option(intent, network, currency):
    intent = PaymentIntent.objects.get(pk=intent.pk)
    return next(t for t in deposit_addresses(intent)[network]["supported_tokens"] if t["token_currency"] == currency)


@pytest.mark.parametrize("minor, expected", [
    (0, "$0.00"), (5, "$0.05"), (1234, "$12.34"), (100, "$1.00"), (123456789, "$1,234,567.89"),
])
def test_fiat_amounts_are_formatted_from_minor_units(minor, expected):
    assert format_fiat(minor, "usd") == expected


@pytest.mark.parametrize("base_units, decimals, expected", [
    (12340000000000000000, 18, "12.34"),
    (12340000, 6, "12.34"),
    (1, 18, "0.000000000000000001"),
    (10 ** 18, 18, "1"),
    (123456789012345678901234567890, 18, "123456789012.34567890123456789"),
    (42, 0, "42"),
    (0, 6, "0"),
])
def test_token_amounts_are_exact_and_trimmed(base_units, decimals, expected):
    assert format_base_units(base_units, decimals) == expected


def test_page_shows_what_to_pay_where(client, merchant):
    merchant.name = "Acme Coffee"
    merchant.save()
    intent = make_intent(merchant, return_url="https://shop.example/orders/1")

    response = page(client, intent)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    body = text(response)
    option = token_option(intent, "bsc", "usdc")  # the first token of the first network
    assert "Acme Coffee" in body
    assert "$12.34" in body
    assert "12.34 USDC" in body
    assert to_checksum_address(intent.deposit_address.address) in body
    assert re.search(r'<div class="qr" id="qr"><svg[^>]*viewBox=', body)
    assert 'id="qr-path"' in body
    assert f'href="{escape(option["payment_uri"])}"' in body and "Open in wallet" in body
    assert '<a class="btn btn-secondary" id="return-link" href="https://shop.example/orders/1"' in body
    assert "Return to Acme Coffee" in body
    assert "Waiting for payment" in body
    assert 'aria-live="polite"' in body


def test_query_chooses_network_and_token(client, merchant):
    intent = make_intent(merchant, networks=["bsc", "ethereum"])

    usdt_bsc = text(page(client, intent, "?network=bsc&token=usdt"))
    usdc_eth = text(page(client, intent, "?network=ethereum&token=usdc"))

    assert "12.34 USDT" in usdt_bsc and "on BNB Smart Chain Testnet" in usdt_bsc
    assert escape(token_option(intent, "bsc", "usdt")["payment_uri"]) in usdt_bsc
    assert "12.34 USDC" in usdc_eth and "on Ethereum Sepolia" in usdc_eth
    eth_uri = token_option(intent, "ethereum", "usdc")["payment_uri"]
    assert "@11155111/transfer" in eth_uri and eth_uri.endswith("uint256=1.234e7")
    assert escape(eth_uri) in usdc_eth
    assert '<a class="chip" href="?network=ethereum&amp;token=usdc" aria-current="true">' in usdc_eth
    # Every choice is offered as a link, the current one marked.
    assert 'href="?network=bsc&amp;token=usdt" aria-current="true"' in usdt_bsc
    assert 'href="?network=bsc&amp;token=usdc"' in usdt_bsc


@pytest.mark.parametrize("query", [
    "?network=solana", "?network=bsc&token=dai", "?network=&token=", "?network=%3Cscript%3E&token=%00",
    "?network=BSC&token=USDT&network=x", "?token=usdt&token=usdc",
])
def test_invalid_choices_fall_back_to_a_valid_one(client, merchant, query):
    intent = make_intent(merchant, networks=["bsc", "ethereum"])

    response = page(client, intent, query)

    assert response.status_code == 200
    body = text(response)
    assert "<script>" not in body
    assert re.search(r"12\.34 USD[CT]</span>", body)
    assert 'id="qr-path"' in body


def test_a_token_missing_on_the_chosen_network_falls_back_to_that_networks_first_token(client, merchant):
    intent = make_intent(merchant, networks=["bsc", "ethereum"])

    body = text(page(client, intent, "?network=ethereum&token=usdt"))  # Sepolia has no USDT here

    assert "12.34 USDC" in body and "on Ethereum Sepolia" in body


def test_network_order_follows_the_intent(client, merchant):
    intent = make_intent(merchant, networks=["ethereum", "bsc"])

    body = text(page(client, intent))

    assert "on Ethereum Sepolia" in body
    assert body.index(">Ethereum Sepolia</a>") < body.index(">BNB Smart Chain Testnet</a>")


@pytest.mark.parametrize("secret", [
    "nope", "pi_x_secret_y", "pi_" + "a" * 24 + "_secret_" + "b" * 24, "secret_pi_", "%00",
])
def test_unknown_secret_is_a_friendly_404(client, merchant, secret):
    make_intent(merchant)

    response = client.get(f"/pay/{secret}")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "We can't find this payment" in text(response)
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"


def test_right_intent_with_wrong_random_part_is_a_404(client, merchant):
    intent = make_intent(merchant)
    intent_id, _, random_part = intent.client_secret.partition("_secret_")
    wrong = random_part[:-1] + ("A" if random_part[-1] != "A" else "B")

    page_response = client.get(f"/pay/{intent_id}_secret_{wrong}")
    status_response = client.get(f"/pay/{intent_id}_secret_{wrong}/status")
    bare = client.get(f"/pay/{intent_id}")

    assert page_response.status_code == 404 and status_response.status_code == 404 and bare.status_code == 404
    for response in (page_response, status_response, bare):
        body = text(response)
        assert intent.deposit_address.address not in body.lower()
        assert intent.merchant.name not in body


def test_page_reveals_nothing_beyond_its_own_intent(client, merchant):
    merchant.email = "owner@acme.example"
    merchant.save()
    mine = make_intent(
        merchant, metadata={"order_id": "SECRET-ORDER-77"}, description="internal note 9f3",
        receipt_email="buyer@customer.example",
    )
    other_merchant = MerchantFactory(name="Other Store Ltd")
    other = make_intent(other_merchant, amount=9876, networks=["bsc", "ethereum"])
    also_mine = make_intent(merchant, amount=5555)

    body = text(page(client, mine))

    assert merchant.name in body
    for leak in (
        "owner@acme.example", "SECRET-ORDER-77", "order_id", "internal note 9f3", "buyer@customer.example",
        merchant.id, other.id, other.client_secret, "Other Store Ltd", "$98.76", "98.76",
        other.deposit_address.address, to_checksum_address(other.deposit_address.address),
        also_mine.id, also_mine.client_secret, also_mine.deposit_address.address,
        to_checksum_address(also_mine.deposit_address.address), "$55.55",
    ):
        assert leak not in body, leak


def test_security_headers(client, merchant):
    intent = make_intent(merchant)

    response = page(client, intent)

    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "no-store"
    assert "noindex" in response["X-Robots-Tag"]
    csp = response["Content-Security-Policy"]
    assert "script-src 'self';" in csp  # no inline script: the page's script is a static file of this site
    nonce = re.search(r"style-src 'self' 'nonce-([^']+)'", csp).group(1)
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    body = text(response)
    # The only script is this site's file (its configuration is JSON data); the inline style carries the nonce;
    # nothing is loaded from elsewhere.
    assert re.findall(r"<script(?![^>]*application/json)[^>]*>", body) == [
        '<script src="/static/checkout/checkout.js" defer>']
    assert re.findall(r"<style[^>]*>", body) == [f'<style nonce="{nonce}">']
    assert "<link rel=\"stylesheet\"" not in body
    assert re.findall(r" src=\"([^\"]*)\"", body) == ["/static/checkout/checkout.js"]
    assert " style=" not in body.replace('<style nonce="', "")  # inline style attributes would be blocked
    assert " on" + "click=" not in body
    # A fresh nonce per response.
    assert page(client, intent)["Content-Security-Policy"] != csp


def test_no_external_resources(client, merchant):
    intent = make_intent(merchant, return_url="https://shop.example/done")

    body = text(page(client, intent))

    urls = re.findall(r"""(?:src|href|action)=["']([^"']+)""", body)
    external = [u for u in urls if u.startswith(("http:", "https:", "//"))]
    assert external == ["https://shop.example/done"]  # the merchant's own return link, nothing loaded


def test_status_json(client, merchant):
    intent = make_intent(merchant)

    response = client.get(f"/pay/{intent.client_secret}/status")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    body = response.json()
    assert set(body) == {"status", "amount_received", "expires_at", "now", "pay", "notice", "receipt_html"}
    assert body["status"] == "requires_action" and body["amount_received"] == 0
    option = token_option(intent, "bsc", "usdc")  # the page's default choice
    assert body["pay"] == {"amount": "12.34", "symbol": "USDC", "amount_base_units": option["amount"],
                           "payment_uri": option["payment_uri"], "progress": "", "qr_svg": None}
    assert body["notice"] is None and body["receipt_html"] is None
    assert body["expires_at"] == unix(intent.expires_at)
    assert abs(body["now"] - unix(intent.created)) < 60

    PaymentIntent.objects.filter(pk=intent.pk).update(status="succeeded", amount_received=1234)
    body = client.get(f"/pay/{intent.client_secret}/status").json()
    assert body["status"] == "succeeded" and body["amount_received"] == 1234


def test_status_of_an_unknown_secret_is_a_json_404(client, merchant):
    intent = make_intent(merchant)

    response = client.get(f"/pay/{intent.id}_secret_nope/status")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"]["code"] == "resource_missing"
    assert "status" not in response.json()


def test_only_get_and_head(client, merchant):
    intent = make_intent(merchant)

    assert client.post(f"/pay/{intent.client_secret}").status_code == 405
    assert client.post(f"/pay/{intent.client_secret}/status").status_code == 405
    assert client.head(f"/pay/{intent.client_secret}").status_code == 200
    assert PaymentIntent.objects.get(pk=intent.pk).status == "requires_action"


def test_succeeded_intent_shows_paid_and_hides_the_instructions(client, merchant):
    intent = make_intent(merchant, return_url="https://shop.example/done")
    PaymentIntent.objects.filter(pk=intent.pk).update(status="succeeded", amount_received=1234)

    body = text(page(client, intent))

    assert 'data-state="succeeded"' in body
    assert '<section id="pay-block" aria-label="Payment instructions" hidden>' in body
    assert '<section class="state state-ok" id="state-succeeded" >' in body
    assert ">Paid</span>" in body and "Payment received" in body


def test_processing_intent_says_payment_seen(client, merchant):
    intent = make_intent(merchant)
    PaymentIntent.objects.filter(pk=intent.pk).update(status="processing")

    body = text(page(client, intent))

    assert "Payment seen, waiting for confirmation" in body
    assert '<section class="state state-wait" id="state-processing" >' in body


def test_expired_and_canceled_intents(client, merchant):
    expired = make_intent(merchant)
    PaymentIntent.objects.filter(pk=expired.pk).update(status="canceled", cancellation_reason="expired")
    canceled = payment_intent_cancel(intent=make_intent(merchant), reason="requested_by_customer")

    expired_body = text(page(client, expired))
    canceled_body = text(page(client, canceled))

    assert ">Expired</span>" in expired_body and "This payment has expired" in expired_body
    assert 'data-state="expired"' in expired_body
    assert ">Canceled</span>" in canceled_body and 'data-state="canceled"' in canceled_body
    assert 'id="pay-block" aria-label="Payment instructions" hidden' in canceled_body


def test_unconfirmed_intent_is_not_ready_yet(client, merchant):
    intent = make_intent(merchant, confirm=False)

    response = page(client, intent)

    assert response.status_code == 200
    body = text(response)
    assert "Not ready for payment yet" in body and ">Not ready yet</span>" in body
    assert 'id="qr-path"' not in body and "ethereum:" not in body
    assert client.get(f"/pay/{intent.client_secret}/status").json()["expires_at"] is None


def test_unsafe_return_url_is_not_linked(client, merchant):
    intent = make_intent(merchant)
    PaymentIntent.objects.filter(pk=intent.pk).update(return_url="javascript:alert(1)")

    body = text(page(client, intent))

    assert "javascript:" not in body and 'id="return-link"' not in body and "Return to" not in body


def test_html_in_merchant_name_is_escaped(client, merchant):
    merchant.name = '<img src=x onerror="alert(1)">'
    merchant.save()
    intent = make_intent(merchant, return_url="https://shop.example/")

    body = text(page(client, intent))

    assert "<img" not in body and "&lt;img src=x" in body
