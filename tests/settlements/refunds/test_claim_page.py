"""The hosted claim page: the customer gives the address (typed twice, confirmed); the same look and headers as the
checkout; a wrong or unknown link shows nothing."""
import pytest
from django.test import Client

from payments.models import Event
from settlements.refunds.models import Refund
from settlements.refunds.services import refund_create

from .conftest import CHECKSUMMED, written

pytestmark = pytest.mark.usefixtures("ledger_ready")


@pytest.fixture
def refund(charge, merchant):
    return refund_create(merchant=merchant, livemode=False, charge=charge, amount=250)


def page(refund):
    return f"/claim/{refund.claim_token}"


def form(address, again=None, confirm=True):
    data = {"address": address, "address_confirm": again if again is not None else address}
    return {**data, "confirm": "on"} if confirm else data


def test_the_page_shows_the_refund_with_the_checkouts_headers(refund):
    response = Client().get(page(refund))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Refund from" in html and refund.merchant.name in html and "2.5 USDT" in html and "$2.50" in html
    assert response["Cache-Control"] == "no-store" and response["Referrer-Policy"] == "no-referrer"
    assert "nonce-" in response["Content-Security-Policy"] and "frame-ancestors 'none'" in \
        response["Content-Security-Policy"]
    assert refund.charge_id not in html and refund.id not in html  # no API ids on a customer's page


def test_an_unknown_or_mangled_link_is_a_404(refund):
    assert Client().get(f"/claim/{refund.claim_token[:-1]}x").status_code == 404
    assert Client().get("/claim/" + "a" * 80).status_code == 404


@pytest.mark.parametrize("data, message", [
    (form(CHECKSUMMED, CHECKSUMMED.replace("0x5a", "0x5b")), "The two addresses differ"),
    (form("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"), "checksum"),
    (form("0x" + "0" * 40), "zero address"),
    (form(CHECKSUMMED, confirm=False), "required"),
])
def test_a_bad_address_or_no_confirmation_is_refused_and_nothing_changes(refund, data, message):
    client = Client(enforce_csrf_checks=False)
    before = written()
    response = client.post(page(refund), data)
    assert response.status_code == 400 and message in response.content.decode()
    assert written() == before
    assert Refund.objects.get(pk=refund.pk).status == "requires_action"


def test_the_customers_address_moves_the_refund_to_pending_once(refund):
    client = Client(enforce_csrf_checks=True)
    client.get(page(refund))  # the CSRF cookie
    response = client.post(page(refund), {**form(CHECKSUMMED), "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 302 and response["Location"] == page(refund)
    refund.refresh_from_db()
    assert (refund.status, refund.destination_address) == ("pending", CHECKSUMMED.lower())
    assert list(Event.objects.filter(object_id=refund.id).values_list("type", flat=True).order_by("sequence")) == [
        "refund.created", "refund.updated"]
    # the page now says where it goes and asks nothing more; a second post changes nothing
    shown = client.get(page(refund)).content.decode()
    assert "On its way" in shown and CHECKSUMMED.lower() in shown and "<form" not in shown
    client.post(page(refund), {**form("0x" + "d1" * 20), "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    refund.refresh_from_db()
    assert refund.destination_address == CHECKSUMMED.lower()


def test_the_page_speaks_german_to_a_german_browser(refund):
    client = Client(enforce_csrf_checks=False)
    response = client.get(page(refund), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    html = response.content.decode()
    assert response["Content-Language"] == "de" and '<html lang="de">' in html
    assert "Erstattung von" in html and "Warten auf Ihre Adresse" in html and "Ihre Adresse" in html
    assert "Meine Erstattung an diese Adresse senden" in html and "2.5 USDT" in html

    refused = client.post(page(refund), form(CHECKSUMMED, CHECKSUMMED.replace("0x5a", "0x5b")),
                          HTTP_ACCEPT_LANGUAGE="de")
    assert refused.status_code == 400
    assert "Die beiden Adressen unterscheiden sich" in refused.content.decode()
    assert Refund.objects.get(pk=refund.pk).status == "requires_action"
