"""The hosted checkout in headless Chromium: QR, address, a ticking countdown, and the status changing live.

Uses Debian's Chromium (/usr/bin/chromium, or $CHROMIUM_PATH); Playwright never downloads a browser here.
Saves a screenshot to build/checkout.png for a look at the design (390x844, a phone)."""
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from eth_utils import to_checksum_address

from payments.models import PaymentIntent
from payments.services import PaymentIntentInput, payment_intent_create

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM}"),
]


def in_thread(fn):
    """The ORM refuses to run beside Playwright's event loop, so database work happens in a plain thread."""
    def run():
        try:
            return fn()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        page = context.new_page()
        page.set_default_timeout(8000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def intent(transactional_db, live_server, ready, merchant):
    """Created before the browser starts (the ORM refuses to run beside Playwright's event loop)."""
    merchant.name = "Acme Coffee Roasters"
    merchant.save()
    return payment_intent_create(
        merchant=merchant, livemode=False,
        data=PaymentIntentInput(amount=1234, currency="usd", networks=["bsc", "ethereum"],
                                return_url="https://shop.example/orders/1"),
    )


def test_checkout_page_counts_down_and_shows_the_payment_live(live_server, intent, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    problems = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda req: req.url.startswith(live_server.url) or problems.append("external " + req.url))

    # Given the customer opens the hosted page
    page.goto(f"{live_server.url}/pay/{intent.client_secret}?network=bsc&token=usdt")

    # then they see the QR code, the address, the amount and a running countdown
    expect(page.locator("#qr svg path")).to_be_visible()
    expect(page.locator("#address")).to_have_text(to_checksum_address(intent.deposit_address.address))
    expect(page.locator("#token-amount")).to_have_text("12.34 USDT")
    expect(page.locator("#status-text")).to_have_text("Waiting for payment")
    expect(page.locator("#return-link")).to_have_text("Return to Acme Coffee Roasters")
    countdown = page.locator("#countdown")
    expect(countdown).to_have_text(re.compile(r"^\d\d:\d\d$"))
    first = countdown.text_content()
    # the time left until the intent expires (not a fixed 29:5x: a busy machine takes many seconds to get here),
    # at most a tick ahead of the real clock, and behind it by no more than a busy machine's slow timer
    minutes, seconds = map(int, first.split(":"))
    left = (intent.expires_at - timezone.now()).total_seconds()
    assert left - 2 <= minutes * 60 + seconds <= min(left + 15, 1800), (first, left)
    page.wait_for_function(
        "first => document.getElementById('countdown').textContent !== first", arg=first, timeout=10000
    )
    Path(settings.BASE_DIR, "build").mkdir(exist_ok=True)
    page.screenshot(path=str(Path(settings.BASE_DIR, "build", "checkout.png")), full_page=True)

    # Nothing spills sideways on a small phone
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.set_viewport_size({"width": 390, "height": 844})

    # The copy button works (the async clipboard API on localhost, or the fallback)
    page.locator("button[data-copy]").nth(1).click()
    expect(page.locator("button[data-copy]").nth(1)).to_have_text("Copied")

    # When the chain watcher (stood in for here) marks the intent paid
    page.evaluate("window.__sameDocument = true")
    in_thread(lambda: PaymentIntent.objects.filter(pk=intent.pk).update(status="succeeded", amount_received=1234))

    # then the page says so without a reload, and the instructions go away
    expect(page.locator("#status-text")).to_have_text("Paid", timeout=6000)
    expect(page.locator("#state-succeeded")).to_be_visible()
    expect(page.locator("#pay-block")).to_be_hidden()
    expect(page.locator("#countdown-wrap")).to_be_hidden()
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(Path(settings.BASE_DIR, "build", "checkout-paid.png")), full_page=True)
    assert problems == []


# --- Partial payments and the browser wallet, paid for real on the devnet ---------------------------------------

USDT = 10**18  # the devnet's test USDT has 18 decimals


@pytest.fixture
def browser_context():
    """A fresh browser context per call (a locale sets the browser's Accept-Language)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        contexts = []

        def new_page(**options):
            context = browser.new_context(viewport={"width": 390, "height": 844}, **options)
            contexts.append(context)
            page = context.new_page()
            page.set_default_timeout(8000)
            return page

        try:
            yield new_page
        finally:
            for context in contexts:
                context.close()
            browser.close()


def watch_problems(page, live_server):
    problems = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda req: req.url.startswith(live_server.url) or problems.append("external " + req.url))
    return problems


def no_sideways_scroll(page, width=390):
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.fixture
def devnet_intent(live_server, devnet, anvil_chain, api, merchant):
    """An intent of 20.00 USD on the devnet (bsc), made before the browser starts."""
    from tests.payments.conftest import create, settle

    merchant.name = "Acme Coffee Roasters"
    merchant.save()
    settle(devnet, anvil_chain)
    intent = create(api, amount=2000)
    address = intent["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]
    return intent, address


def test_an_underpaid_intent_shows_the_remainder_and_completes_after_the_second_transfer(
        live_server, devnet, anvil_chain, devnet_intent, browser_context):
    from playwright.sync_api import expect

    from tests.payments.conftest import settle
    from tests.payments.test_chain_payments import send_token

    intent, address = devnet_intent
    page = browser_context()
    problems = watch_problems(page, live_server)
    page.goto(f"{live_server.url}/pay/{intent['client_secret']}?network=bsc&token=usdt")
    expect(page.locator("#token-amount")).to_have_text("20 USDT")
    expect(page.locator("#pay-progress")).to_be_hidden()
    expect(page.locator("#wallet-pay")).to_be_hidden()  # no window.ethereum in this browser
    page.evaluate("window.__sameDocument = true")

    # When the customer sends 12 of the 20 USDT and it becomes final
    first = send_token(anvil_chain, token="usdt", to=address, amount=12 * USDT)
    in_thread(lambda: settle(devnet, anvil_chain, mine_blocks=2))

    # then the page shows what came and exactly what is left, on the same address, with the rest's QR and link
    expect(page.locator("#pay-progress")).to_have_text(
        "Received 12 USDT of 20 USDT; send exactly 8 USDT more.", timeout=10000)
    expect(page.locator("#token-amount")).to_have_text("8 USDT")
    expect(page.locator("#address")).to_have_text(to_checksum_address(address))
    expect(page.locator("#open-wallet")).to_have_attribute("href", re.compile(r"/transfer\?address=0x[0-9a-fA-F]{40}"
                                                                              r"&uint256=8e18$"))
    expect(page.locator("#qr svg")).to_have_attribute("aria-label", re.compile(r"^QR code: pay 8 USDT on "))
    expect(page.locator("#status-text")).to_have_text("Waiting for payment")
    no_sideways_scroll(page)
    Path(settings.BASE_DIR, "build").mkdir(exist_ok=True)
    page.screenshot(path=str(Path(settings.BASE_DIR, "build", "checkout-partial.png")), full_page=True)

    # When the customer sends the 8 USDT left
    second = send_token(anvil_chain, token="usdt", to=address, amount=8 * USDT)
    in_thread(lambda: settle(devnet, anvil_chain, mine_blocks=2))

    # then the page says paid, without a reload, with a receipt of both transactions
    expect(page.locator("#status-text")).to_have_text("Paid", timeout=10000)
    expect(page.locator("#state-succeeded")).to_be_visible()
    expect(page.locator("#pay-block")).to_be_hidden()
    receipt = page.locator("#receipt")
    expect(receipt).to_contain_text("$20.00")
    expect(receipt).to_contain_text(first)
    expect(receipt).to_contain_text(second)
    expect(receipt.locator(".receipt-transfer")).to_have_text(["12 USDT · Local devnet (anvil)",
                                                              "8 USDT · Local devnet (anvil)"])
    expect(page.locator("#print-receipt")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True
    no_sideways_scroll(page)
    page.emulate_media(media="print")
    expect(page.locator("#print-receipt")).to_be_hidden()  # the printed receipt is the receipt alone
    expect(receipt).to_be_visible()
    page.emulate_media(media="screen")
    page.screenshot(path=str(Path(settings.BASE_DIR, "build", "checkout-receipt.png")), full_page=True)
    assert problems == []


# An EIP-1193 provider, as a wallet extension injects it: window.ethereum.request() handed to the test (Python),
# which plays the wallet and sends eth_sendTransaction to anvil, whose default accounts are unlocked.
PROVIDER_STUB = """
window.ethereum = {
  request: function (args) {
    return window.__wallet(args.method, args.params || []).then(function (answer) {
      if (answer.error) { var e = new Error(answer.error.message); e.code = answer.error.code; throw e; }
      return answer.result;
    });
  }
};
"""


def test_pay_with_the_browser_wallet_on_the_devnet(live_server, devnet, anvil_chain, devnet_intent, browser_context):
    from playwright.sync_api import expect

    from tests.payments.conftest import mined, settle
    from wallets.devchain import erc20_balance_of, rpc

    intent, address = devnet_intent
    payer = anvil_chain.accounts[7]
    calls = []
    wallet = {"chain": "0x1"}  # the wallet starts on another chain: the page must switch it

    def answer(method, params):
        calls.append((method, params))
        if method == "eth_requestAccounts":
            return {"result": [payer]}
        if method == "eth_chainId":
            return {"result": wallet["chain"]}
        if method == "wallet_switchEthereumChain":
            if int(params[0]["chainId"], 16) != int(rpc(anvil_chain.rpc_url, "eth_chainId"), 16):
                return {"error": {"code": 4902, "message": "Unrecognized chain ID"}}
            wallet["chain"] = params[0]["chainId"]
            return {"result": None}
        if method == "eth_sendTransaction":
            assert wallet["chain"] == "0x7a69"
            return {"result": rpc(anvil_chain.rpc_url, "eth_sendTransaction", params)}
        return {"error": {"code": 4200, "message": f"unsupported {method}"}}

    page = browser_context()
    problems = watch_problems(page, live_server)
    page.expose_function("__wallet", answer)
    page.add_init_script(PROVIDER_STUB)
    page.goto(f"{live_server.url}/pay/{intent['client_secret']}?network=bsc&token=usdt")
    before = erc20_balance_of(anvil_chain.rpc_url, anvil_chain.tokens["usdt"], address)

    # When the customer pays with the browser wallet
    button = page.locator("#wallet-pay")
    expect(button).to_be_visible()
    expect(page.locator("#open-wallet")).to_be_visible()  # the EIP-681 link and the QR code stay
    expect(page.locator("#qr svg")).to_be_visible()
    button.click()

    # then the page switched the wallet to the devnet and sent exactly the transfer due, and shows its hash
    expect(page.locator("#wallet-tx")).to_have_text(re.compile(r"^0x[0-9a-f]{64}$"), timeout=10000)
    tx_hash = page.locator("#wallet-tx").text_content()
    assert [m for m, _ in calls] == ["eth_requestAccounts", "eth_chainId", "wallet_switchEthereumChain",
                                     "eth_sendTransaction"]
    assert calls[2][1] == [{"chainId": "0x7a69"}]
    [sent] = calls[3][1]
    assert sent["from"] == payer and sent["to"].lower() == anvil_chain.tokens["usdt"] and sent["value"] == "0x0"
    assert sent["data"] == "0xa9059cbb" + address[2:].rjust(64, "0") + hex(20 * USDT)[2:].rjust(64, "0")
    assert mined(anvil_chain.rpc_url, tx_hash)["status"] == "0x1"
    assert erc20_balance_of(anvil_chain.rpc_url, anvil_chain.tokens["usdt"], address) - before == 20 * USDT

    # and the page's live status takes over: seen, then paid, with the transaction on the receipt
    in_thread(lambda: settle(devnet, anvil_chain, mine_blocks=2))
    expect(page.locator("#status-text")).to_have_text("Paid", timeout=10000)
    expect(page.locator("#receipt")).to_contain_text(tx_hash)
    assert problems == []


def test_a_german_browser_gets_the_checkout_in_german(live_server, intent, browser_context):
    from playwright.sync_api import expect

    page = browser_context(locale="de-DE")
    problems = watch_problems(page, live_server)
    page.goto(f"{live_server.url}/pay/{intent.client_secret}?network=bsc&token=usdt")

    assert page.evaluate("document.documentElement.lang") == "de"
    expect(page.locator("#status-text")).to_have_text("Warten auf Zahlung")
    expect(page.locator("#send-label")).to_have_text("Senden Sie genau")
    expect(page.locator("#open-wallet")).to_have_text("In Wallet öffnen")
    expect(page.locator("#return-link")).to_have_text("Zurück zu Acme Coffee Roasters")
    no_sideways_scroll(page)

    # The script's words are German too: the live status after the payment
    in_thread(lambda: PaymentIntent.objects.filter(pk=intent.pk).update(status="succeeded", amount_received=1234))
    expect(page.locator("#status-text")).to_have_text("Bezahlt", timeout=6000)
    expect(page.locator("#state-succeeded h2")).to_have_text("Zahlung erhalten")
    assert problems == []
