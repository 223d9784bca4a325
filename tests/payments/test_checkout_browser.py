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
