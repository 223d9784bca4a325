"""The portal's team: invitations by email, roles (never without an owner), the merchant switcher, sign-up with
email verification, password reset, the test/live switch and idle sessions."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from gateway import otp
from merchants import services
from merchants.models import ApiKey, Invitation, Membership, Merchant, Role
from tests.otp import login_verified, totp_code, totp_device

PASSWORD = "correct horse battery staple"


@pytest.fixture
def shop(db):
    shop = services.merchant_create(email="owner@example.com", name="Shop", password=PASSWORD)
    totp_device(shop.user)
    return shop


@pytest.fixture
def owner(shop):
    client = Client()
    login_verified(client, shop.user)
    return client


def _link(message) -> str:
    return re.search(r"http://[^\s]+", message.body).group(0).removeprefix("http://127.0.0.1:8000")


def _member_client(merchant, role, email):
    user = get_user_model().objects.create_user(username=email, email=email, password=PASSWORD)
    Membership.objects.create(merchant=merchant, user=user, role=role)
    client = Client()
    login_verified(client, user)
    return client, user


def test_the_creators_login_is_the_owner(shop):
    assert list(Membership.objects.values_list("merchant_id", "user_id", "role")) == [
        (shop.id, shop.user_id, Role.OWNER)]


def test_an_invited_newcomer_chooses_a_password_joins_and_enrols_totp_at_the_first_login(
        shop, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post("/portal/team/invitations/", {"email": "Dev@Example.com", "role": "developer"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dev@example.com"] and "Shop" in mail.outbox[0].subject
    link = _link(mail.outbox[0])
    assert Invitation.objects.get().token_hash not in mail.outbox[0].body  # the token travels, its hash is kept

    newcomer = Client()
    page = newcomer.get(link)
    assert page.status_code == 200 and b"Developer" in page.content
    mismatch = newcomer.post(link, {"password1": "a long passphrase 1", "password2": "another one"})
    assert mismatch.status_code == 400 and not Membership.objects.filter(role=Role.DEVELOPER).exists()

    joined = newcomer.post(link, {"password1": "a long passphrase 1", "password2": "a long passphrase 1"})

    assert joined.status_code == 302 and joined.url == "/portal/login/"
    member = Membership.objects.get(user__username="dev@example.com")
    assert (member.merchant, member.role) == (shop, Role.DEVELOPER)
    login = newcomer.post("/portal/login/", {"username": "dev@example.com", "password": "a long passphrase 1"})
    assert login.url == "/portal/two-factor/"
    assert newcomer.get(link).status_code == 404  # used once


def test_an_existing_login_joins_a_second_merchant_and_switches_between_them(
        shop, django_capture_on_commit_callbacks):
    elsewhere = services.merchant_create(email="boss@example.com", name="Elsewhere", password=PASSWORD)
    services.api_key_create(merchant=elsewhere, name="elsewhere-key")
    services.api_key_create(merchant=shop, name="shop-key")
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_create(merchant=elsewhere, email="owner@example.com", role=Role.ADMIN,
                                   invited_by=elsewhere.user, by_role=Role.OWNER)
    link = _link(mail.outbox[0])
    client = Client()
    assert client.post(link).status_code == 302  # no password asked: the login exists
    login_verified(client, shop.user)

    first = client.get("/portal/developers/")
    assert b"shop-key" in first.content and b"elsewhere-key" not in first.content
    assert b'name="merchant"' in first.content  # the switcher shows with two merchants

    assert client.post("/portal/switch/", {"merchant": elsewhere.id}).status_code == 302
    second = client.get("/portal/developers/")
    assert b"elsewhere-key" in second.content and b"shop-key" not in second.content
    stranger = services.merchant_create(email="x@example.com", password=PASSWORD)
    assert client.post("/portal/switch/", {"merchant": stranger.id}).status_code == 404
    assert b"elsewhere-key" in client.get("/portal/developers/").content


def test_an_admin_cannot_invite_an_owner_and_nothing_is_written(shop):
    admin, _ = _member_client(shop, Role.ADMIN, "admin@example.com")

    response = admin.post("/portal/team/invitations/", {"email": "new@example.com", "role": "owner"})

    assert response.status_code == 400 and "role" in response.context["invite_form"].errors
    assert not Invitation.objects.exists() and not mail.outbox


def test_a_viewer_cannot_invite(shop):
    viewer, _ = _member_client(shop, Role.VIEWER, "viewer@example.com")

    assert viewer.post("/portal/team/invitations/", {"email": "new@example.com", "role": "viewer"}).status_code == 403
    assert not Invitation.objects.exists()


def test_an_expired_or_revoked_invitation_does_not_work(shop, owner):
    issued = services.invitation_create(merchant=shop, email="late@example.com", role=Role.VIEWER,
                                        invited_by=shop.user, by_role=Role.OWNER)
    assert owner.post(f"/portal/team/invitations/{issued.invitation.id}/revoke").status_code == 302

    response = Client().post(f"/portal/invitations/{issued.token}/", {"password1": "x" * 20, "password2": "x" * 20})

    assert response.status_code == 404 and not get_user_model().objects.filter(username="late@example.com").exists()


def test_the_last_owner_cannot_be_demoted_nor_removed(shop, owner):
    me = Membership.objects.get(user=shop.user)

    demote = owner.post(f"/portal/team/members/{me.id}/role", {"role": "admin"})
    remove = owner.post(f"/portal/team/members/{me.id}/remove")

    assert demote.status_code == 400 and b"needs an owner" in demote.content
    assert remove.status_code == 400
    me.refresh_from_db()
    assert me.role == Role.OWNER


def test_an_owner_changes_roles_and_removes_members_but_an_admin_cannot_touch_an_owner(shop, owner):
    admin, admin_user = _member_client(shop, Role.ADMIN, "admin@example.com")
    _, dev_user = _member_client(shop, Role.DEVELOPER, "dev@example.com")
    dev = Membership.objects.get(user=dev_user)
    mine = Membership.objects.get(user=shop.user)

    assert admin.post(f"/portal/team/members/{dev.id}/role", {"role": "finance"}).status_code == 302
    refused = admin.post(f"/portal/team/members/{mine.id}/remove")
    assert refused.status_code == 400
    assert owner.post(f"/portal/team/members/{dev.id}/remove").status_code == 302

    assert not Membership.objects.filter(user=dev_user).exists()
    assert Membership.objects.get(user=shop.user).role == Role.OWNER
    assert admin.get("/portal/developers/").status_code == 200
    # The removed developer's session opens nothing of the merchant any more
    removed = Client()
    login_verified(removed, dev_user)
    assert removed.get("/portal/").status_code == 404


def test_sign_up_verify_the_email_then_enrol_totp(db, client, django_capture_on_commit_callbacks):
    form = {"name": "New <b>Shop</b>", "email": "new@example.com", "password1": "a long passphrase 1",
            "password2": "a long passphrase 1"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/portal/signup/", form)
    assert response.status_code == 200 and b"Check your email" in response.content
    merchant = Merchant.objects.get(email="new@example.com")
    assert Membership.objects.get(merchant=merchant).role == Role.OWNER
    before = client.post("/portal/login/", {"username": "new@example.com", "password": "a long passphrase 1"})
    assert before.status_code == 200  # not verified yet: no login

    verified = client.get(_link(mail.outbox[0]))

    assert verified.status_code == 302 and verified.url == "/portal/login/"
    login = client.post("/portal/login/", {"username": "new@example.com", "password": "a long passphrase 1"})
    assert login.url == "/portal/two-factor/"


def test_sign_up_with_a_known_email_answers_the_same_and_creates_nothing(shop, client,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/portal/signup/", {"name": "Again", "email": "owner@example.com",
                                                   "password1": "a long passphrase 1",
                                                   "password2": "a long passphrase 1"})
    assert response.status_code == 200 and b"Check your email" in response.content
    assert Merchant.objects.count() == 1 and "already have an account" in mail.outbox[0].subject


def test_a_bad_sign_up_names_the_field_and_writes_nothing(db, client):
    response = client.post("/portal/signup/", {"name": "", "email": "not-an-email", "password1": "short",
                                               "password2": "short"})
    assert response.status_code == 400
    assert {"name", "email", "password2"} <= set(response.context["form"].errors)
    assert not Merchant.objects.exists() and not mail.outbox


def test_sign_up_is_off_when_the_operator_says_so(client, settings):
    settings.GATEWAY_PORTAL_SIGNUP = False
    assert client.get("/portal/signup/").status_code == 404
    assert b"/portal/signup/" not in client.get("/portal/login/").content


def test_a_forged_verification_link_does_nothing(db, client):
    assert client.get("/portal/signup/verify/forged/").status_code == 404


def test_password_reset_by_email_keeps_the_second_factor(shop, client):
    assert client.post("/portal/password-reset/", {"email": "owner@example.com"}).status_code == 302
    link = _link(mail.outbox[0])
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": "brand new passphrase",
                                                         "new_password2": "brand new passphrase"})
    assert done.status_code == 302

    no_code = client.post("/portal/login/", {"username": "owner@example.com", "password": "brand new passphrase"})
    assert no_code.status_code == 200  # the code is still needed
    code = totp_code(otp.totp_device_confirmed(user=shop.user))
    ok = client.post("/portal/login/", {"username": "owner@example.com", "password": "brand new passphrase",
                                        "otp_token": code})
    assert ok.status_code == 302 and ok.url == "/portal/"


def test_test_mode_shows_a_banner_and_only_test_objects(shop, owner):
    services.api_key_create(merchant=shop, livemode=False, name="the-test-key")
    services.api_key_create(merchant=shop, livemode=True, name="the-live-key")

    test_page = owner.get("/portal/developers/")
    assert b"Test mode:" in test_page.content
    assert b"the-test-key" in test_page.content and b"the-live-key" not in test_page.content

    owner.post("/portal/mode/", {"livemode": "1", "next": "/portal/developers/"})
    live_page = owner.get("/portal/developers/")
    assert b"Test mode:" not in live_page.content
    assert b"the-live-key" in live_page.content and b"the-test-key" not in live_page.content
    assert b"Test mode:" not in Client().get("/portal/login/").content  # no portal chrome before a login


def test_the_mode_switch_returns_only_to_portal_pages(owner):
    response = owner.post("/portal/mode/", {"livemode": "1", "next": "https://evil.example/"})
    assert response.url == "/portal/"


def test_sessions_end_after_the_idle_time(shop, client, settings):
    assert settings.SESSION_SAVE_EVERY_REQUEST and settings.SESSION_COOKIE_AGE == 3600
    login_verified(client, shop.user)
    response = client.get("/portal/")
    assert response.cookies["sessionid"]["max-age"] == 3600  # moved on by each request


XSS = '<script>alert("x")</script>'


@pytest.mark.parametrize("path", ["/portal/", "/portal/developers/", "/portal/team/"])
def test_merchant_and_member_names_render_escaped(db, path):
    merchant = services.merchant_create(email="xss@example.com", name=XSS, password=PASSWORD)
    client = Client()
    login_verified(client, merchant.user)
    services.api_key_create(merchant=merchant, name=XSS)

    page = client.get(path).content.decode()

    assert XSS not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert not ApiKey.objects.filter(merchant=merchant).exclude(name=XSS).exists()


def test_a_creator_removed_from_the_team_stays_out(shop, owner):
    second, second_user = _member_client(shop, Role.OWNER, "second@example.com")
    mine = Membership.objects.get(user=shop.user)

    assert second.post(f"/portal/team/members/{mine.id}/remove").status_code == 302

    assert owner.get("/portal/").status_code == 404 and owner.get("/portal/team/").status_code == 404


def test_forms_that_send_email_are_limited_per_ip(db, client, rate_limits):
    rate_limits.GATEWAY_RATE_LIMIT_PORTAL_MAIL_PER_IP = "2/h"
    for _ in range(2):
        assert client.post("/portal/password-reset/", {"email": "nobody@example.com"}).status_code == 302

    assert client.post("/portal/password-reset/", {"email": "nobody@example.com"}).status_code == 429
    assert client.post("/portal/signup/", {"name": "x", "email": "y@example.com"}).status_code == 429
    assert client.get("/portal/signup/").status_code == 200  # reading the page is never counted
    assert not mail.outbox and not Merchant.objects.exists()
