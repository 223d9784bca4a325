"""The portal's settings pages (merchants.settings_views, payments.portal.settings_views): each section's form valid
and invalid (the field named, nothing written on error), the logo upload's checks, a viewer who reads but cannot
edit, and the checkout showing the brand."""
import struct
import zlib
from io import BytesIO

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils.html import escape
from PIL import Image, PngImagePlugin

from audit.models import AuditRecord
from merchants import branding
from merchants.models import Membership, Merchant, MerchantLogo, Role
from payments.services import PaymentIntentInput, payment_intent_create
from tests.otp import login_verified
from tests.payments.portal import portal_merchant

XSS = '<script>alert("x")</script>'


@pytest.fixture
def shop(db, client):
    return portal_merchant("shop@example.com", client, name="Shop")


@pytest.fixture
def other(db):
    return portal_merchant("other@example.com", name="Other")


def member_client(merchant, role) -> Client:
    user = get_user_model().objects.create_user(username=f"{role}@example.com", email=f"{role}@example.com",
                                                password="x" * 12)
    Membership.objects.create(merchant=merchant, user=user, role=role)
    client = Client()
    login_verified(client, user)
    return client


def audit_count(action):
    return AuditRecord.objects.filter(action=action).count()


def snapshot(merchant) -> dict:
    m = Merchant.objects.get(pk=merchant.pk)
    return {f.attname: getattr(m, f.attname) for f in Merchant._meta.concrete_fields}


def png(width=800, height=400, *, color=(200, 30, 30), text_chunk=None) -> bytes:
    image = Image.new("RGB", (width, height), color)
    info = None
    if text_chunk:
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", text_chunk)
    out = BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def bomb_png(side=50_000) -> bytes:
    """A valid PNG of a few hundred bytes whose header claims side x side pixels (2.5 G pixels)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    row = b"\x00" + b"\x00" * 1000
    idat = zlib.compress(row * 10, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def upload(data: bytes, name="logo.png", content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


# --- Pages and permissions -----------------------------------------------------------------------------------

SECTIONS = ["/portal/settings/", "/portal/settings/branding/", "/portal/settings/checkout/",
            "/portal/settings/payment-methods/", "/portal/settings/notifications/"]


@pytest.mark.parametrize("path", SECTIONS)
def test_each_section_opens_for_the_owner_with_a_save_button(client, shop, networks, path):
    response = client.get(path)
    assert response.status_code == 200
    assert b">Save</button>" in response.content


@pytest.mark.parametrize("path", SECTIONS)
def test_a_viewer_reads_the_settings_but_the_form_is_disabled(shop, networks, path):
    viewer = member_client(shop, Role.VIEWER)
    response = viewer.get(path)
    assert response.status_code == 200
    assert b">Save</button>" not in response.content and b"disabled" in response.content


@pytest.mark.parametrize("path, data", [
    ("/portal/settings/business/save", {"public_name": "Hacked"}),
    ("/portal/settings/branding/save", {"accent_color": "#000000"}),
    ("/portal/settings/checkout/save", {"payment_expiry_minutes": 60, "underpayment_tolerance_bps": 10}),
    ("/portal/settings/payment-methods/save", {"enabled_networks": ["bsc"], "enabled_tokens": ["usdt"]}),
    ("/portal/settings/notifications/save", {"notification_emails": "x@example.com"}),
])
@pytest.mark.parametrize("role", [Role.VIEWER, Role.DEVELOPER, Role.FINANCE])
def test_a_role_without_settings_write_cannot_save(shop, networks, path, data, role):
    member = member_client(shop, role)
    before = snapshot(shop)
    records = AuditRecord.objects.count()
    response = member.post(path, data)
    assert response.status_code == 403
    assert snapshot(shop) == before and AuditRecord.objects.count() == records


def test_an_admin_can_save(shop, networks):
    admin = member_client(shop, Role.ADMIN)
    response = admin.post("/portal/settings/business/save", {"public_name": "Admin's name"})
    assert response.status_code == 302
    assert Merchant.objects.get(pk=shop.pk).public_name == "Admin's name"


# --- Business ------------------------------------------------------------------------------------------------

def test_business_profile_saves_with_an_audit_record(client, shop):
    response = client.post("/portal/settings/business/save", {
        "public_name": "Acme Coffee", "support_email": "help@acme.example", "website_url": "https://acme.example/",
        "statement_descriptor": "ACME COFFEE"})
    assert response.status_code == 302
    shop.refresh_from_db()
    assert (shop.public_name, shop.support_email, shop.website_url, shop.statement_descriptor) == (
        "Acme Coffee", "help@acme.example", "https://acme.example/", "ACME COFFEE")
    record = AuditRecord.objects.get(action="merchant.profile_update")
    assert record.object_id == shop.pk
    assert record.before["public_name"] == "" and record.after["public_name"] == "Acme Coffee"


def test_saving_the_same_values_again_writes_no_record(client, shop):
    data = {"public_name": "Acme", "support_email": "", "website_url": "", "statement_descriptor": ""}
    client.post("/portal/settings/business/save", data)
    client.post("/portal/settings/business/save", data)
    assert audit_count("merchant.profile_update") == 1


@pytest.mark.parametrize("field, value", [
    ("support_email", "not an email"),
    ("website_url", "javascript:alert(1)"),
    ("website_url", "ftp://files.example/"),
    ("statement_descriptor", "<b>bad</b>"),
    ("statement_descriptor", "abc"),
    ("statement_descriptor", "12345678"),
    ("public_name", "a\x00b"),
    ("public_name", "x" * 201),
])
def test_business_profile_refuses_bad_input_naming_the_field(client, shop, field, value):
    before = snapshot(shop)
    data = {"public_name": "Acme", "support_email": "", "website_url": "", "statement_descriptor": "", field: value}
    response = client.post("/portal/settings/business/save", data)
    assert response.status_code == 400
    assert response.context["form"].errors.keys() == {field}
    assert f'id="{field}-errors"'.encode() in response.content
    assert snapshot(shop) == before and audit_count("merchant.profile_update") == 0


# --- Checkout settings -----------------------------------------------------------------------------------------

def test_checkout_settings_save(client, shop):
    response = client.post("/portal/settings/checkout/save", {
        "payment_expiry_minutes": 90, "underpayment_tolerance_bps": 50, "accept_late_payments": "on"})
    assert response.status_code == 302
    shop.refresh_from_db()
    assert (shop.payment_expiry_minutes, shop.underpayment_tolerance_bps, shop.accept_late_payments) == (90, 50, True)
    record = AuditRecord.objects.get(action="merchant.checkout_settings_update")
    assert record.before == {"payment_expiry_minutes": 30, "underpayment_tolerance_bps": 0,
                             "accept_late_payments": False}


@pytest.mark.parametrize("field, value", [
    ("payment_expiry_minutes", 4), ("payment_expiry_minutes", 7 * 24 * 60 + 1), ("payment_expiry_minutes", "ten"),
    ("payment_expiry_minutes", ""), ("underpayment_tolerance_bps", 1001), ("underpayment_tolerance_bps", -1),
    ("underpayment_tolerance_bps", "1.5"),
])
def test_checkout_settings_keep_their_bounds(client, shop, field, value):
    before = snapshot(shop)
    data = {"payment_expiry_minutes": 60, "underpayment_tolerance_bps": 10, field: value}
    response = client.post("/portal/settings/checkout/save", data)
    assert response.status_code == 400
    assert response.context["form"].errors.keys() == {field}
    assert snapshot(shop) == before


# --- Payment methods -------------------------------------------------------------------------------------------

def test_payment_methods_offer_only_active_networks_and_save(client, shop, networks):
    from wallets.models import Network

    Network.objects.filter(api_name="polygon").update(is_active=False)
    from wallets.networks import clear_network_cache

    clear_network_cache()
    page = client.get("/portal/settings/payment-methods/").content.decode()
    assert 'value="bsc"' in page and 'value="polygon"' not in page
    response = client.post("/portal/settings/payment-methods/save",
                           {"enabled_networks": ["bsc"], "enabled_tokens": ["usdt"]})
    assert response.status_code == 302
    shop.refresh_from_db()
    assert shop.enabled_networks == ["bsc"] and shop.enabled_tokens == ["usdt"]
    assert audit_count("merchant.payment_methods_update") == 1


def test_payment_methods_apply_to_new_intents(shop, networks, wallet):
    shop.enabled_networks, shop.enabled_tokens = ["bsc"], ["usdt"]
    shop.save()
    intent = payment_intent_create(merchant=shop, livemode=False,
                                   data=PaymentIntentInput(amount=1000, currency="usd"))
    assert intent.networks == ["bsc"]
    assert {o.token.currency for o in intent.options.all()} == {"usdt"}


@pytest.mark.parametrize("data, field", [
    ({"enabled_networks": [], "enabled_tokens": ["usdt"]}, "enabled_networks"),
    ({"enabled_networks": ["bsc"], "enabled_tokens": []}, "enabled_tokens"),
    ({"enabled_networks": ["nochain"], "enabled_tokens": ["usdt"]}, "enabled_networks"),
    ({"enabled_networks": ["bsc"], "enabled_tokens": ["doge"]}, "enabled_tokens"),
])
def test_payment_methods_keep_at_least_one_active_of_each(client, shop, networks, data, field):
    before = snapshot(shop)
    response = client.post("/portal/settings/payment-methods/save", data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert snapshot(shop) == before


# --- Notifications ---------------------------------------------------------------------------------------------

def test_notification_settings_save(client, shop):
    response = client.post("/portal/settings/notifications/save", {
        "notification_emails": "ops@shop.example, Finance@shop.example\nops@shop.example",
        "notify_payment_succeeded": "on", "notify_daily_summary": "on"})
    assert response.status_code == 302
    shop.refresh_from_db()
    assert shop.notification_emails == ["ops@shop.example", "Finance@shop.example"]
    assert (shop.notify_payment_succeeded, shop.notify_webhook_failing, shop.notify_daily_summary) == (
        True, False, True)
    assert audit_count("merchant.notifications_update") == 1


@pytest.mark.parametrize("emails", ["not-an-email", "a@example.com, <script>@x", ",".join(
    f"u{i}@example.com" for i in range(6))])
def test_notification_emails_are_checked(client, shop, emails):
    before = snapshot(shop)
    response = client.post("/portal/settings/notifications/save", {"notification_emails": emails})
    assert response.status_code == 400
    assert response.context["form"].errors.keys() == {"notification_emails"}
    assert b"<script>@x" not in response.content
    assert snapshot(shop) == before


# --- Branding and the logo -------------------------------------------------------------------------------------

def test_a_real_png_is_resized_and_re_encoded_without_its_metadata(client, shop):
    source = png(800, 400, text_chunk="secret GPS 48.85,2.35")
    response = client.post("/portal/settings/branding/save", {"accent_color": "#FFAA00", "logo": upload(source)})
    assert response.status_code == 302
    logo = MerchantLogo.objects.get(merchant=shop)
    stored = bytes(logo.image)
    assert (logo.width, logo.height) == (256, 128) and logo.content_type == "image/webp"
    with Image.open(BytesIO(stored)) as image:
        assert image.format == "WEBP" and image.size == (256, 128)
        assert not image.info.get("exif") and "Comment" not in image.info
    assert b"secret GPS" not in stored
    shop.refresh_from_db()
    assert shop.brand_accent_color == "#ffaa00"
    record = AuditRecord.objects.get(action="merchant.branding_update")
    assert record.before == {"brand_accent_color": "", "logo_sha256": None}
    assert record.after == {"brand_accent_color": "#ffaa00", "logo_sha256": logo.sha256}
    # The page shows it back.
    assert b"data:image/webp;base64," in client.get("/portal/settings/branding/").content


def test_jpeg_and_webp_are_accepted_and_a_small_logo_is_not_enlarged(client, shop):
    for fmt, name in (("JPEG", "logo.jpg"), ("WEBP", "logo.webp")):
        out = BytesIO()
        Image.new("RGB", (64, 32), (0, 80, 160)).save(out, format=fmt)
        response = client.post("/portal/settings/branding/save", {"logo": upload(out.getvalue(), name)})
        assert response.status_code == 302
        assert (MerchantLogo.objects.get(merchant=shop).width, MerchantLogo.objects.get(merchant=shop).height) == (
            64, 32)


def test_the_logo_can_be_removed(client, shop):
    client.post("/portal/settings/branding/save", {"logo": upload(png(10, 10))})
    assert MerchantLogo.objects.filter(merchant=shop).exists()
    client.post("/portal/settings/branding/save", {"logo_remove": "on"})
    assert not MerchantLogo.objects.filter(merchant=shop).exists()


def _gif() -> bytes:
    out = BytesIO()
    Image.new("RGB", (10, 10)).save(out, format="GIF")
    return out.getvalue()


@pytest.mark.parametrize("data, reason", [
    (b"this is not an image at all", "not a PNG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "not a PNG"),
    (_gif(), "not a PNG"),
    (png(50, 50)[:60], "not a PNG"),  # truncated
    (bomb_png(), "pixels"),
    (bomb_png(5000), "pixels"),  # 25 M pixels: under Pillow's own guard, over ours
    (b"\x89PNG" + b"\x00" * (branding.LOGO_MAX_UPLOAD_BYTES + 1), "larger than"),
], ids=["text", "svg", "gif", "truncated", "bomb", "big-canvas", "oversized"])
def test_a_bad_logo_is_refused_and_nothing_is_written(client, shop, data, reason):
    before = snapshot(shop)
    response = client.post("/portal/settings/branding/save", {"accent_color": "#123456", "logo": upload(data)})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors.keys() == {"logo"} and reason in errors["logo"][0]
    assert not MerchantLogo.objects.exists() and snapshot(shop) == before
    assert audit_count("merchant.branding_update") == 0


@pytest.mark.parametrize("value", ["red", "#12345", "#1234567", "#ggg000", "#123456;}body{x:y"])
def test_the_accent_colour_must_be_hex(client, shop, value):
    response = client.post("/portal/settings/branding/save", {"accent_color": value})
    assert response.status_code == 400
    assert response.context["form"].errors.keys() == {"accent_color"}
    assert Merchant.objects.get(pk=shop.pk).brand_accent_color == ""


@pytest.mark.parametrize("color", ["#000000", "#ffffff", "#777777", "#2d5bff", "#ffaa00", "#00ff00", "#ff0000",
                                   "#0000ff", "#7f7f7f", "#808080"])
def test_the_text_colour_on_the_accent_meets_wcag_aa(color):
    assert branding.contrast_ratio(color, branding.readable_text_color(color)) >= 4.5


# --- The checkout applies the brand ----------------------------------------------------------------------------

def _checkout(client, merchant):
    intent = payment_intent_create(merchant=merchant, livemode=False,
                                   data=PaymentIntentInput(amount=1234, currency="usd", networks=["bsc"]))
    return client.get(f"/pay/{intent.client_secret}")


def test_checkout_shows_the_name_logo_and_colour_escaped(client, shop, other, networks, wallet):
    client.post("/portal/settings/business/save", {"public_name": XSS, "website_url": "https://shop.example/"})
    client.post("/portal/settings/branding/save", {"accent_color": "#ffaa00", "logo": upload(png(300, 300))})
    logo = MerchantLogo.objects.get(merchant=shop)
    response = _checkout(Client(), shop)
    page = response.content.decode()
    assert escape(XSS) in page and XSS not in page
    assert branding.logo_data_url(logo.image) in page
    assert "--accent: #ffaa00; --accent-text: #000000;" in page
    assert 'href="https://shop.example/"' in page  # the website is the return link when the intent has none
    csp = response["Content-Security-Policy"]
    assert "style-src 'self' 'nonce-" in csp and "unsafe-inline" not in csp
    assert "img-src 'self' data:" in csp
    assert ' style="' not in page  # no inline style attribute the CSP would block

    # Another merchant's checkout shows none of it.
    theirs = _checkout(Client(), other).content.decode()
    assert branding.logo_data_url(logo.image) not in theirs and "--accent:" not in theirs
    assert "Other" in theirs


def test_another_merchants_logo_is_not_shown_in_my_portal(client, shop, other):
    Client_other = Client()
    login_verified(Client_other, other.user)
    Client_other.post("/portal/settings/branding/save", {"logo": upload(png(20, 20, color=(1, 2, 3)))})
    theirs = MerchantLogo.objects.get(merchant=other)
    mine = client.get("/portal/settings/branding/").content.decode()
    assert branding.logo_data_url(theirs.image) not in mine and "data:image/webp" not in mine


def test_checkout_without_branding_keeps_its_look(client, merchant, networks, wallet):
    page = _checkout(client, merchant).content.decode()
    assert "--accent:" not in page and 'class="avatar brand-avatar"' in page
