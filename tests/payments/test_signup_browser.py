"""Issue 12's browser flow in headless Chromium, from nothing to a paid intent in the CSV export: sign up, verify the
email (the link from Django's mail outbox: the live server runs in this process), log in and enrol TOTP (the code
computed from the key the page shows), create a test key, create an intent with it over HTTP, pay it on anvil with
the test helper, and see it succeed on the portal home, in the payments list and in the CSV export.

Uses Debian's Chromium as tests/payments/test_checkout_browser.py does (Playwright never downloads a browser)."""
import base64
import csv
import io
import json
import re
import urllib.parse
import urllib.request

import pytest
from django.core import mail
from django_otp.oath import totp

from tests.payments.conftest import mined, settle
from tests.payments.test_checkout_browser import browser_page, in_thread, pytestmark  # noqa: F401 (fixture, marks)

EMAIL = "founder@example.com"
PASSWORD = "a long passphrase for the shop"


def api(base: str, key: str, method: str, path: str, params: dict | None = None) -> dict:
    """A Stripe-style form-encoded call to the live server (plain HTTP: no ORM beside Playwright)."""
    data = urllib.parse.urlencode(params or {}).encode() if method == "POST" else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {key}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.timeout(300)
def test_sign_up_enrol_create_a_key_pay_an_intent_and_export_it(devnet, anvil_chain, live_server, settings,
                                                                 browser_page):
    settings.GATEWAY_PORTAL_SIGNUP = True
    page, base = browser_page, live_server.url
    in_thread(lambda: settle(devnet, anvil_chain))  # the scanner's cursor at the head

    # Sign up, then follow the verification link of the email
    page.goto(base + "/portal/signup/")
    page.fill("#id_name", "Founder's Shop")
    page.fill("#id_email", EMAIL)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your email")
    link = re.search(r"https?://[^\s]+/portal/signup/verify/[^\s]+", mail.outbox[-1].body).group(0)
    page.goto(base + urllib.parse.urlsplit(link).path)
    assert page.url.endswith("/portal/login/")

    # Log in: the first login enrols an authenticator (the code from the key shown for manual entry)
    page.fill("#id_username", EMAIL)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/portal/two-factor/")
    secret = page.locator("code").first.inner_text().strip()
    page.fill("#id_token", str(totp(base64.b32decode(secret), step=30, t0=0, digits=6)).zfill(6))
    page.click("button[type=submit]")
    page.wait_for_url(base + "/portal/")

    # A test secret key, shown once
    page.goto(base + "/portal/developers/")
    page.select_option("select[name=kind]", "secret")
    page.select_option("select[name=mode]", "test")
    page.fill("input[name=name]", "server")
    page.click("form[action='/portal/keys/'] button[type=submit]")
    key = page.locator("#raw-key").inner_text().strip()
    assert key.startswith("sk_test_")

    # An intent created with that key, paid in full on anvil by the test helper, final after 3 blocks
    intent = api(base, key, "POST", "/v1/payment_intents", {
        "amount": 1999, "currency": "usd", "payment_method_options[crypto][deposit_options][networks][]": "bsc"})
    paid = api(base, key, "POST", f"/v1/test_helpers/payment_intents/{intent['id']}/simulate_crypto_deposit",
               {"network": "bsc", "token_currency": "usdt"})
    mined(anvil_chain.rpc_url, paid["test_helper"]["transaction_hash"])
    in_thread(lambda: settle(devnet, anvil_chain, mine_blocks=3))
    assert api(base, key, "GET", f"/v1/payment_intents/{intent['id']}")["status"] == "succeeded"

    # The portal home counts it, the payments list shows it succeeded, and the CSV export has it
    page.goto(base + "/portal/")
    assert "1 of 1 intents" in page.content()
    page.goto(base + "/portal/payments/")
    row = page.locator("tr", has_text=intent["id"])
    assert row.count() == 1 and "succeeded" in row.inner_text().lower()
    export = page.context.request.get(base + "/portal/payments/export.csv")
    assert export.status == 200 and "text/csv" in export.headers["content-type"]
    rows = list(csv.DictReader(io.StringIO(export.text())))
    ours = [r for r in rows if intent["id"] in r.values()]
    assert len(ours) == 1 and "succeeded" in ours[0].values()
