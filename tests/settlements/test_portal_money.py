"""The portal's money pages: balance and balance transactions (filters, pages, CSV), payouts (list, detail, create,
cancel), refunds (list, detail, cancel), a refund from a payment's page (to an address, or through a claim link, the
same rows as the API's) and of an unmatched deposit. Every page scoped to its merchant and mode; refusals are form
errors that write nothing; what merchants and customers wrote renders escaped."""
import csv
import io

import secrets

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditRecord
from payments.models import Charge, Event, PaymentIntent
from settlements.models import AccountKind, JournalTransaction, Payout
from settlements.portal.forms import PayoutCreateForm
from settlements.refunds.models import Refund
from settlements.selectors import ledger_problems
from tests.merchants.factories import MerchantFactory
from tests.otp import login_verified, totp_code
from tests.settlements.conftest import ONE_USDT, balance, owed
from tests.settlements.payout_fixtures import funded, snapshot, usable_address
from tests.settlements.portal_money import make_payout, make_refund
from tests.settlements.refunds.conftest import CHECKSUMMED, credited_charge, unmatched_deposit, written

pytestmark = pytest.mark.usefixtures("ledger_ready")
XSS = '<script>alert("x")</script>'


@pytest.fixture
def portal(merchant, django_user_model):
    """A client with a verified portal session of `merchant` (its owner), in test mode."""
    user = django_user_model.objects.create_user(username=merchant.email, email=merchant.email, password="pw-1234567")
    merchant.user = user
    merchant.save(update_fields=["user"])
    client = Client()
    client.device = login_verified(client, user)
    return client


def text(response) -> str:
    return response.content.decode()


def events_of(object_id: str) -> list[str]:
    return list(Event.objects.filter(object_id=object_id).order_by("sequence").values_list("type", flat=True))


# --- Balance ------------------------------------------------------------------------------------------------------

def test_the_balance_shows_each_side_per_currency_and_the_exact_token_units(portal, merchant):
    # given a Charge that brought 10 USDT and one base unit, then a payout of $4 on its way
    charge = funded(merchant, 10 * ONE_USDT + 1)
    usable_address(merchant)
    assert portal.post("/portal/payouts/new", {"token": str(charge.transfer.token_id), "amount": "4.00"}
                       ).status_code == 302
    page = text(portal.get("/portal/balance/"))
    # then available $6.00 (6 USDT + 1 base unit, shown exactly in token units) and $4.00 reserved
    assert "$6.00" in page and "$4.00" in page
    assert "<code>6.000000000000000001</code>" in page and "<code>4</code>" in page
    # the balance transactions: the charge links to its payment, the payout to its page
    payout = Payout.objects.get(merchant=merchant)
    assert f'href="/portal/payments/{charge.payment_intent_id}/"' in page
    assert f'href="/portal/payouts/{payout.id}/"' in page


def test_balance_transactions_filter_by_type_and_date_and_refuse_what_does_not_parse(portal, merchant):
    charge = funded(merchant)
    usable_address(merchant)
    portal.post("/portal/payouts/new", {"token": str(charge.transfer.token_id), "amount": "1.00"})
    payout = Payout.objects.get(merchant=merchant)
    only_payouts = text(portal.get("/portal/balance/?type=payout"))
    assert payout.id in only_payouts and f"/portal/payments/{charge.payment_intent_id}/" not in only_payouts
    assert "No balance transactions match." in text(portal.get("/portal/balance/?created_to=2001-01-01"))
    for query, field in [("type=nope", "Type"), ("created_from=yesterday", "From"), ("after=txn_99999999", "")]:
        response = portal.get(f"/portal/balance/?{query}")
        assert response.status_code == 400, query
        assert ("errorlist" in text(response)) and (field in text(response))


def test_balance_transactions_page_by_keyset(portal, merchant):
    for _ in range(3):
        funded(merchant, ONE_USDT)
    journals = list(JournalTransaction.objects.filter(kind="charge_credit").order_by("-created", "-id"))
    # a page after the newest shows the two older ones, and links back to the newer page
    page = text(portal.get(f"/portal/balance/?after=txn_{journals[0].id}"))
    intents = [j.source_id for j in journals]
    shown = [c.payment_intent_id for c in Charge.objects.filter(pk__in=intents)]
    assert sum(f"/portal/payments/{pi}/" in page for pi in shown) == 2
    assert f"before=txn_{journals[1].id}" in page
    # another merchant's transaction is no cursor here
    other = MerchantFactory()
    funded(other, ONE_USDT)
    theirs = JournalTransaction.objects.filter(kind="charge_credit").order_by("-id").first()
    assert portal.get(f"/portal/balance/?after=txn_{theirs.id}").status_code == 400


def test_the_balance_transactions_export_streams_every_row_exactly(portal, merchant):
    funded(merchant, 10 * ONE_USDT + 1)
    funded(merchant, 2 * ONE_USDT)
    response = portal.get("/portal/balance/export.csv?type=charge")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv") and "balance-transactions-test-" in \
        response["Content-Disposition"] and response["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["type"], r["amount"], r["net_base_units"], r["net_token"]) for r in rows] == [
        ("charge", "2.00", str(2 * ONE_USDT), "2"), ("charge", "10.00", str(10 * ONE_USDT + 1), "10.000000000000000001")]


# --- Payouts ------------------------------------------------------------------------------------------------------

def test_a_payout_is_created_from_the_portal_with_the_api_s_service_and_canceled_while_pending(portal, merchant):
    charge = funded(merchant)
    usable_address(merchant)
    form_page = text(portal.get("/portal/payouts/new"))
    assert "otp_token" not in form_page  # test mode moves no real money: no code asked
    response = portal.post("/portal/payouts/new", {"token": str(charge.transfer.token_id), "amount": "2.50",
                                                   "description": XSS})
    payout = Payout.objects.get(merchant=merchant)
    assert response.status_code == 302 and response["Location"] == f"/portal/payouts/{payout.id}/"
    assert (payout.amount, payout.amount_base_units, payout.status) == (250, 25 * ONE_USDT // 10, "pending")
    assert owed(merchant)["available"] == 10 * ONE_USDT - payout.amount_base_units
    assert events_of(payout.id) == ["payout.created"]
    assert AuditRecord.objects.filter(action="payout.create", object_id=payout.id).exists()
    detail = text(portal.get(f"/portal/payouts/{payout.id}/"))
    assert XSS not in detail and "&lt;script&gt;" in detail and "payout.created" in detail
    # cancel: a confirmation first, then the money is available again
    assert "Cancel payout" in text(portal.get(f"/portal/payouts/{payout.id}/cancel"))
    assert portal.post(f"/portal/payouts/{payout.id}/cancel").status_code == 302
    payout.refresh_from_db()
    assert payout.status == "canceled" and owed(merchant)["available"] == 10 * ONE_USDT
    assert events_of(payout.id) == ["payout.created", "payout.canceled"]
    # a second cancel is refused with the service's message, nothing changes
    again = portal.post(f"/portal/payouts/{payout.id}/cancel")
    assert again.status_code == 400 and "status of canceled" in text(again)
    assert ledger_problems() == []


def test_a_payout_over_the_available_balance_or_without_an_address_is_a_form_error_and_writes_nothing(portal,
                                                                                                       merchant):
    charge = funded(merchant)
    token_id = str(charge.transfer.token_id)
    before = snapshot()
    # no payout address: the token is not offered
    response = portal.post("/portal/payouts/new", {"token": token_id, "amount": "1.00"})
    assert response.status_code == 400 and "No payout address in this mode yet" in text(response)
    usable_address(merchant)
    for amount, says in [("10.01", "insufficient funds"), ("0", "above zero"), ("1.005", "decimal places"),
                         ("lots", "Enter a number")]:
        response = portal.post("/portal/payouts/new", {"token": token_id, "amount": amount})
        assert response.status_code == 400 and says in text(response), amount
    assert snapshot() == before


def test_live_mode_asks_a_fresh_code_for_a_payout_and_never_spends_test_money(portal, merchant):
    from datetime import timedelta

    from django.utils import timezone

    from settlements.models import PayoutAddress
    from settlements.payouts import payout_address_add
    from wallets.models import Token

    funded(merchant)  # test-mode money
    live_token = Token.objects.get(network__api_name="bsc", network__livemode=True, network__is_active=True,
                                   currency="usdt")
    row = payout_address_add(merchant=merchant, token=live_token, address="0x" + "5e" * 20)
    PayoutAddress.objects.filter(pk=row.pk).update(usable_after=timezone.now() - timedelta(seconds=1))
    session = portal.session
    session["portal_livemode"] = True
    session.save()
    assert 'name="otp_token"' in text(portal.get("/portal/payouts/new"))
    before = snapshot()
    data = {"token": str(live_token.id), "amount": "1.00"}
    for code, says in [(None, "This field is required"), ("000000", "That code is not right")]:
        response = portal.post("/portal/payouts/new", {**data, **({"otp_token": code} if code else {})})
        assert response.status_code == 400 and says in text(response)
    # a right code reaches the service: the live balance is empty (the test money is not there)
    response = portal.post("/portal/payouts/new", {**data, "otp_token": totp_code(portal.device)})
    assert response.status_code == 400 and "insufficient funds" in text(response)
    assert snapshot() == before
    assert "otp_token" not in PayoutCreateForm(user=merchant.user, merchant=merchant, livemode=False).fields


def test_payouts_list_filters_by_status_and_shows_only_this_merchant_and_mode(portal, merchant):
    pending = make_payout(merchant)
    paid = make_payout(merchant, status=Payout.Status.PAID)
    live = make_payout(merchant)
    Payout.objects.filter(pk=live.pk).update(livemode=True)
    theirs = make_payout(MerchantFactory())
    page = text(portal.get("/portal/payouts/"))
    assert pending.id in page and paid.id in page and live.id not in page and theirs.id not in page
    only_paid = text(portal.get("/portal/payouts/?status=paid"))
    assert paid.id in only_paid and pending.id not in only_paid
    assert portal.get("/portal/payouts/?status=nope").status_code == 400
    for payout in (live, theirs):
        assert portal.get(f"/portal/payouts/{payout.id}/").status_code == 404
        assert portal.post(f"/portal/payouts/{payout.id}/cancel").status_code == 404
    assert Payout.objects.get(pk=theirs.pk).status == "pending"


# --- Refunds from a payment ---------------------------------------------------------------------------------------

def _refund_projection(refund: Refund) -> dict:
    from settlements.refunds.presenters import refund_json

    body = refund_json(refund)
    for key in ("id", "created", "charge", "payment_intent"):
        body.pop(key)
    body["next_action"] = body["next_action"] and body["next_action"]["type"]
    return body


def once(data: dict) -> dict:
    """A form as the page gives it: with its one-time token."""
    return {**data, "form_token": secrets.token_urlsafe(24)}


def test_a_refund_sent_twice_from_one_form_refunds_once(portal, merchant):
    charge = credited_charge(merchant)
    form = once({"amount": "4.00", "destination_address": CHECKSUMMED})
    first = portal.post(f"/portal/payments/{charge.payment_intent_id}/refund", form)
    again = portal.post(f"/portal/payments/{charge.payment_intent_id}/refund", form)  # a double click
    refund = Refund.objects.get(charge=charge)
    assert first["Location"] == again["Location"] == f"/portal/refunds/{refund.id}/"
    assert Charge.objects.get(pk=charge.pk).amount_refunded == 400
    missing = portal.post(f"/portal/payments/{charge.payment_intent_id}/refund", {"amount": "1.00"})
    assert missing.status_code == 400 and "expired" in text(missing) and Refund.objects.count() == 1


def test_a_refund_to_an_address_from_the_payment_page_writes_what_the_api_writes(portal, api, merchant):
    ours, theirs = credited_charge(merchant), credited_charge(merchant)
    assert 'Refund…' in text(portal.get(f"/portal/payments/{ours.payment_intent_id}/"))
    response = portal.post(f"/portal/payments/{ours.payment_intent_id}/refund",
                           once({"amount": "4.00", "reason": "requested_by_customer", "destination_address": CHECKSUMMED}))
    refund = Refund.objects.get(charge=ours)
    assert response.status_code == 302 and response["Location"] == f"/portal/refunds/{refund.id}/"
    api_body = api.post("/v1/refunds", {"payment_intent": theirs.payment_intent_id, "amount": 400,
                                        "reason": "requested_by_customer",
                                        "crypto[destination_address]": CHECKSUMMED}).json()
    twin = Refund.objects.get(pk=api_body["id"])
    assert _refund_projection(refund) == _refund_projection(twin)
    assert (refund.status, refund.amount, refund.amount_base_units) == ("pending", 400, 4 * ONE_USDT)
    assert events_of(refund.id) == events_of(twin.id) == ["refund.created"]
    assert events_of(ours.id)[-1] == events_of(theirs.id)[-1] == "charge.refunded"
    kinds = lambda r: list(JournalTransaction.objects.filter(source_id=r.id).values_list("kind", flat=True))  # noqa
    assert kinds(refund) == kinds(twin) == ["refund_reserve"]
    assert Charge.objects.get(pk=ours.pk).amount_refunded == 400
    assert PaymentIntent.objects.get(pk=ours.payment_intent_id).amount_refunded == 400
    assert AuditRecord.objects.filter(action="refund.create", object_id=refund.id).exists()
    assert ledger_problems() == []


def test_a_refund_without_an_address_makes_a_claim_link_shown_and_emailed(portal, merchant,
                                                                          django_capture_on_commit_callbacks):
    charge = credited_charge(merchant)
    PaymentIntent.objects.filter(pk=charge.payment_intent_id).update(receipt_email="buyer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = portal.post(f"/portal/payments/{charge.payment_intent_id}/refund", once({"amount": ""}))
    refund = Refund.objects.get(charge=charge)
    assert response.status_code == 302
    assert (refund.status, refund.amount, refund.receipt_email) == ("requires_action", 1000, "buyer@example.com")
    claim = f"/claim/{refund.claim_token}"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["buyer@example.com"] and claim in mail.outbox[0].body
    detail = portal.get(f"/portal/refunds/{refund.id}/")
    assert claim in text(detail) and "no-cache" in detail["Cache-Control"]
    assert "Left" in text(portal.get(f"/portal/payments/{charge.payment_intent_id}/refund"))
    # a viewer sees the refund but not its claim link (whoever holds it says where the money goes)
    from merchants.models import Membership, Role

    viewer = type(merchant.user).objects.create_user(username="viewer@example.com", email="viewer@example.com",
                                                    password="pw-1234567")
    Membership.objects.create(merchant=merchant, user=merchant.user, role=Role.OWNER)  # the team, with its owner
    Membership.objects.create(merchant=merchant, user=viewer, role=Role.VIEWER)
    viewer_client = Client()
    login_verified(viewer_client, viewer)
    seen = viewer_client.get(f"/portal/refunds/{refund.id}/")
    assert seen.status_code == 200 and refund.id in text(seen) and refund.claim_token not in text(seen)
    # canceled from the portal (nothing was sent): the charge can be refunded again
    assert portal.post(f"/portal/refunds/{refund.id}/cancel").status_code == 302
    refund.refresh_from_db()
    assert refund.status == "canceled" and Charge.objects.get(pk=charge.pk).amount_refunded == 0
    assert claim not in text(portal.get(f"/portal/refunds/{refund.id}/"))


@pytest.mark.parametrize("data, says", [
    ({"amount": "6.00"}, "greater than unrefunded amount"),
    ({"amount": "0"}, "above zero"),
    ({"amount": "1.234"}, "decimal places"),
    ({"destination_address": "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}, "checksum"),
    ({"destination_address": "0x" + "0" * 40}, "zero address"),
    ({"reason": "because"}, "Select a valid choice"),
])
def test_a_refund_over_what_is_left_or_with_bad_input_is_a_form_error_and_writes_nothing(portal, merchant, data,
                                                                                        says):
    charge = credited_charge(merchant)
    assert portal.post(f"/portal/payments/{charge.payment_intent_id}/refund",
                       once({"amount": "5.00", "destination_address": CHECKSUMMED})).status_code == 302
    before = (written(), Charge.objects.get(pk=charge.pk).amount_refunded, owed(merchant))
    response = portal.post(f"/portal/payments/{charge.payment_intent_id}/refund", once(data))
    assert response.status_code == 400 and says in text(response) and "errorlist" in text(response)
    assert (written(), Charge.objects.get(pk=charge.pk).amount_refunded, owed(merchant)) == before


def test_refund_pages_are_scoped_to_the_merchant_and_the_mode(portal, merchant):
    ours = make_refund(merchant, metadata={"note": XSS})
    live = make_refund(merchant, livemode=True)
    other = MerchantFactory()
    theirs = make_refund(other)
    page = text(portal.get("/portal/refunds/"))
    assert ours.id in page and live.id not in page and theirs.id not in page
    assert ours.id in text(portal.get(f"/portal/refunds/?payment_intent={ours.payment_intent_id}"))
    assert ours.id not in text(portal.get(f"/portal/refunds/?payment_intent={theirs.payment_intent_id}"))
    assert ours.id not in text(portal.get("/portal/refunds/?status=succeeded"))
    assert portal.get("/portal/refunds/?payment_intent=nope").status_code == 400
    detail = text(portal.get(f"/portal/refunds/{ours.id}/"))
    assert XSS not in detail and "&lt;script&gt;" in detail
    for refund in (live, theirs):
        assert portal.get(f"/portal/refunds/{refund.id}/").status_code == 404
        assert portal.post(f"/portal/refunds/{refund.id}/cancel").status_code == 404
        assert portal.post(f"/portal/payments/{refund.payment_intent_id}/refund", {}).status_code == 404
    assert Refund.objects.get(pk=theirs.pk).status == "requires_action"


# --- Unmatched deposits -------------------------------------------------------------------------------------------

def test_unmatched_deposits_are_listed_by_reason_and_refunded_whole_from_the_portal(portal, merchant):
    deposit = unmatched_deposit(merchant)
    page = text(portal.get("/portal/unmatched-deposits/"))
    assert deposit.id in page and f"/portal/unmatched-deposits/{deposit.id}/refund" in page
    assert deposit.id in text(portal.get("/portal/unmatched-deposits/?reason=intent_closed"))
    assert deposit.id not in text(portal.get("/portal/unmatched-deposits/?reason=no_open_intent"))
    assert portal.get("/portal/unmatched-deposits/?reason=nope").status_code == 400
    session = portal.session
    session["portal_livemode"] = True
    session.save()
    assert deposit.id not in text(portal.get("/portal/unmatched-deposits/"))  # live mode: test deposits not shown
    assert portal.get(f"/portal/unmatched-deposits/{deposit.id}/refund").status_code == 404
    session["portal_livemode"] = False
    session.save()
    # refunded whole, to an address, with the API's service
    response = portal.post(f"/portal/unmatched-deposits/{deposit.id}/refund", {"destination_address": CHECKSUMMED})
    refund = Refund.objects.get(unmatched_deposit=deposit)
    assert response.status_code == 302
    assert (refund.status, refund.amount_base_units, refund.destination_address) == (
        "pending", 3 * ONE_USDT, CHECKSUMMED.lower())
    assert -balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == 3 * ONE_USDT
    assert events_of(refund.id) == ["refund.created"]
    assert f"/portal/refunds/{refund.id}/" in text(portal.get("/portal/unmatched-deposits/"))
    # once only: a second refund is refused with a form error, nothing written
    before = written()
    again = portal.post(f"/portal/unmatched-deposits/{deposit.id}/refund", {})
    assert again.status_code == 400 and "already been refunded" in text(again) and written() == before


def test_another_merchants_unmatched_deposit_is_404(portal, merchant):
    from tests.payments.portal import make_intent, make_unmatched

    theirs = make_unmatched(make_intent(MerchantFactory(), address=True))
    assert theirs.id not in text(portal.get("/portal/unmatched-deposits/"))
    assert portal.get(f"/portal/unmatched-deposits/{theirs.id}/refund").status_code == 404
    assert portal.post(f"/portal/unmatched-deposits/{theirs.id}/refund",
                       {"destination_address": CHECKSUMMED}).status_code == 404
    assert not Refund.objects.exists()
