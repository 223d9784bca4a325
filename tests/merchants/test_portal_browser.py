"""The portal in headless Chromium at 1280 and 390 px: every page of the nav (so new pages join by themselves) and
the pages before a login fit the screen's width (no sideways scroll: wide tables scroll inside themselves), with no
CSP violation nor script error. Screenshots go to build/portal-<page>-<width>.png.

Uses Debian's Chromium as tests/payments/test_checkout_browser.py does (Playwright never downloads a browser)."""
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from merchants import services
from merchants.models import Membership, Role
from tests.otp import login_verified
from tests.payments.test_checkout_browser import CHROMIUM, CHROMIUM_ARGS, pytestmark  # noqa: F401 (marks)

WIDTHS = (1280, 390)
PUBLIC = ["/portal/login/", "/portal/signup/", "/portal/password-reset/"]
# The settings' sections past the first (the nav links to /portal/settings/).
SETTINGS_SECTIONS = ["/portal/settings/branding/", "/portal/settings/checkout/", "/portal/settings/payment-methods/",
                     "/portal/settings/notifications/"]
# What sticks out (for the failure message).
WIDEST = """[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth)
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')"""


@pytest.fixture
def session_cookie(transactional_db, live_server):
    """A verified owner session of a merchant with a long name, long keys and a team (made before the browser
    starts: the ORM refuses to run beside Playwright's event loop)."""
    merchant = services.merchant_create(email="owner@example.com", password="pw-0123456789",
                                        name="Acme Coffee Roasters and Very Long Name Trading Company Limited")
    for i in range(3):
        services.api_key_create(merchant=merchant, name=f"server key number {i} with a long descriptive name")
    second = services.merchant_create(email="second@example.com", name="Second shop", password="pw-0123456789")
    Membership.objects.create(merchant=second, user=merchant.user, role=Role.ADMIN)
    services.invitation_create(merchant=merchant, email="someone.with.a.long.address@example.com",
                               role=Role.DEVELOPER, invited_by=merchant.user, by_role=Role.OWNER)
    # Branding with a logo, so the settings pages show their preview.
    from io import BytesIO

    from PIL import Image

    from merchants.branding import logo_process

    image = BytesIO()
    Image.new("RGB", (600, 200), (20, 120, 200)).save(image, format="PNG")
    image.seek(0)
    services.merchant_branding_update(merchant=merchant, accent_color="#ffaa00", logo=logo_process(image))
    client = Client()
    login_verified(client, merchant.user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_portal_pages_fit_1280_and_390_px(live_server, session_cookie):
    from playwright.sync_api import sync_playwright

    out = Path(settings.BASE_DIR) / "build"
    out.mkdir(exist_ok=True)
    problems, checked = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width in WIDTHS:
                for logged_in in (False, True):
                    context = browser.new_context(viewport={"width": width, "height": 900})
                    if logged_in:
                        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie,
                                              "url": live_server.url}])
                    page = context.new_page()
                    page.set_default_timeout(8000)
                    # CSP violations and script errors; failed loads are told by URL below (the favicon is none of ours)
                    page.on("console", lambda msg: msg.type == "error" and not msg.text.startswith(
                        "Failed to load resource") and problems.append(msg.text))
                    page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
                            and problems.append(f"{r.status} {r.url}"))
                    page.on("pageerror", lambda exc: problems.append(str(exc)))
                    paths = ["/portal/"] if logged_in else PUBLIC
                    if logged_in:
                        page.goto(live_server.url + "/portal/")
                        paths += [a for a in page.eval_on_selector_all("nav.main a", "els => els.map(e => e.getAttribute('href'))")
                                  if a not in paths]
                        paths += SETTINGS_SECTIONS
                    for path in paths:
                        response = page.goto(live_server.url + path)
                        assert response.status == 200, (path, response.status)
                        if logged_in:
                            assert page.locator("nav.main").count() == 1, path
                        name = path.strip("/").removeprefix("portal").strip("/").replace("/", "-") or "home"
                        page.screenshot(path=str(out / f"portal-{name}-{width}.png"), full_page=True)
                        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                        wide = page.evaluate(WIDEST) if overflow > 0 else ""
                        assert overflow <= 0, f"{path} at {width} px scrolls sideways by {overflow} px: {wide}"
                        checked.append((path, width))
                    context.close()
        finally:
            browser.close()
    assert not problems, problems
    assert {"/portal/", "/portal/developers/", "/portal/team/"} <= {path for path, _ in checked}
