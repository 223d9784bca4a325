"""/v1/refunds: create (full, partial, never more than what is left), retrieve, list, update, cancel; what the
Charge, the intent, the events and the ledger show; bad input refused with the field named and nothing written."""
import pytest
from django.core import mail

from payments.models import Charge, Event, PaymentIntent
from settlements.models import AccountKind, JournalTransaction
from settlements.refunds.models import Refund
from settlements.selectors import ledger_problems
from tests.merchants.factories import MerchantFactory
from tests.settlements.conftest import ONE_USDT, balance, hold, intent_for, owed
from wallets.models import DepositAddress
from wallets.outgoing.models import SendingAddress

from .conftest import CHECKSUMMED, CUSTOMER, credited_charge, written

pytestmark = pytest.mark.usefixtures("ledger_ready")


def create(api, **params):
    return api.post("/v1/refunds", params)


def event_types(object_id):
    return list(Event.objects.filter(object_id=object_id).order_by("sequence").values_list("type", flat=True))


def test_a_full_refund_to_a_given_address_reserves_the_money_and_shows_on_the_charge_and_intent(api, merchant,
                                                                                                   charge):
    # given a $10 Charge of 10 USDT, available to the merchant
    assert owed(merchant) == {"pending": 0, "available": 10 * ONE_USDT}
    # when the merchant refunds it (no amount: what is left) to the customer's address
    response = create(api, charge=charge.id, reason="requested_by_customer", **{
        "crypto[destination_address]": CHECKSUMMED, "metadata[order]": "A-1"})
    # then a pending refund of all of it, in the Charge's token and network
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["id"].startswith("re_") and body["object"] == "refund"
    assert (body["amount"], body["currency"], body["status"], body["charge"]) == (1000, "usd", "pending", charge.id)
    assert body["payment_intent"] == charge.payment_intent_id and body["reason"] == "requested_by_customer"
    assert body["metadata"] == {"order": "A-1"} and body["next_action"] is None
    assert body["destination_details"]["crypto"] == {"network": "bsc", "token_currency": "usdt",
                                                     "address": CHECKSUMMED.lower(), "transaction_hash": None}
    assert body["crypto"]["amount_base_units"] == str(10 * ONE_USDT)
    # the money moves from available to reserved in the ledger
    assert owed(merchant)["available"] == 0
    assert -balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == 10 * ONE_USDT
    assert ledger_problems() == []
    # the Charge and the intent show it; events through the event machinery
    charge_body = api.get(f"/v1/charges/{charge.id}").json()
    assert (charge_body["amount_refunded"], charge_body["refunded"]) == (1000, True)
    assert api.get(f"/v1/payment_intents/{charge.payment_intent_id}").json()["amount_refunded"] == 1000
    assert event_types(body["id"]) == ["refund.created"]
    assert event_types(charge.id)[-1] == "charge.refunded"
    assert api.get(f"/v1/refunds/{body['id']}").json() == body


def test_partial_refunds_never_pass_the_charge_and_together_send_exactly_what_was_received(api, merchant):
    # given a $10 Charge that brought 10 USDT + 1 base unit (an overpayment of a fraction of a cent)
    received = 10 * ONE_USDT + 1
    charge = credited_charge(merchant, received)
    # when it is refunded in three parts: 3.33, 3.33, then the rest
    first = create(api, charge=charge.id, amount=333, **{"crypto[destination_address]": CUSTOMER}).json()
    second = create(api, payment_intent=charge.payment_intent_id, amount=333,
                    **{"crypto[destination_address]": CUSTOMER}).json()
    # more than what is left is refused, naming the amount, and nothing is written
    before = written()
    too_much = create(api, charge=charge.id, amount=335, **{"crypto[destination_address]": CUSTOMER})
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_too_large" and too_much.json()["error"]["param"] == "amount"
    assert written() == before
    rest = create(api, charge=charge.id, **{"crypto[destination_address]": CUSTOMER}).json()
    # then each part is rounded down at the Charge's own rate and the parts add up to every base unit received
    parts = [int(r["crypto"]["amount_base_units"]) for r in (first, second, rest)]
    assert parts[0] == 333 * received // 1000
    assert parts[1] == 666 * received // 1000 - parts[0]
    assert rest["amount"] == 334 and sum(parts) == received
    # a Charge refunded in full refuses another refund
    again = create(api, charge=charge.id, amount=1, **{"crypto[destination_address]": CUSTOMER})
    assert again.json()["error"]["code"] == "charge_already_refunded"
    assert Charge.objects.get(pk=charge.pk).amount_refunded == 1000


def test_without_an_address_the_refund_waits_for_the_customer_and_the_link_is_emailed(
        api, merchant, django_capture_on_commit_callbacks):
    intent = intent_for(merchant)
    PaymentIntent.objects.filter(pk=intent.pk).update(receipt_email="buyer@example.com")
    charge = credited_charge(merchant, intent=intent)
    with django_capture_on_commit_callbacks(execute=True):  # the e-mail goes after the commit
        body = create(api, charge=charge.id, amount=500).json()
    assert body["status"] == "requires_action"
    url = body["next_action"]["crypto_refund_claim"]["url"]
    refund = Refund.objects.get(pk=body["id"])
    assert url.endswith(f"/claim/{refund.claim_token}") and len(refund.claim_token) == 43
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["buyer@example.com"] and url in mail.outbox[0].body


def test_the_merchant_must_have_the_money_available(api, merchant):
    # given a Charge still in its holding period (pending, not available)
    hold(merchant, 3600)
    charge = credited_charge(merchant)
    before = written()
    response = create(api, charge=charge.id, **{"crypto[destination_address]": CUSTOMER})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "balance_insufficient"
    assert written() == before and Charge.objects.get(pk=charge.pk).amount_refunded == 0


@pytest.mark.parametrize("address, why", [
    ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "checksum"),
    ("0x" + "0" * 40, "zero address"),
    ("0x1234", "40 hexadecimal"),
    ("0x" + "g" * 40, "40 hexadecimal"),
])
def test_bad_addresses_are_refused_naming_the_field_and_nothing_is_written(api, charge, address, why):
    before = written()
    response = create(api, charge=charge.id, **{"crypto[destination_address]": address})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "crypto[destination_address]" and why in error["message"]
    assert written() == before


def test_our_own_addresses_are_refused(api, charge, merchant):
    hot = SendingAddress.objects.create(network=charge.transfer.network, address="0x" + "ab" * 20, key_ref="m/x",
                                        next_nonce=0)
    deposit = DepositAddress.objects.filter(merchant=merchant).first()
    before = written()
    for address in (hot.address, deposit.address):
        response = create(api, charge=charge.id, **{"crypto[destination_address]": address})
        assert response.status_code == 400 and "gateway's own" in response.json()["error"]["message"]
        assert response.json()["error"]["param"] == "crypto[destination_address]"
    assert written() == before


@pytest.mark.parametrize("params, param", [
    ({}, "charge"),
    ({"amount": "0"}, "amount"),
    ({"amount": "10.5"}, "amount"),
    ({"currency": "eur"}, "currency"),
    ({"reason": "bored"}, "reason"),
])
def test_bad_parameters_are_refused_naming_the_field(api, charge, params, param):
    if param != "charge":
        params = {"charge": charge.id, **params}
    before = written()
    response = create(api, **params)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert written() == before


def test_another_merchants_refunds_and_charges_are_404_and_a_publishable_key_gets_nothing(api, charge, make_key):
    refund = create(api, charge=charge.id, amount=100).json()
    other = MerchantFactory()
    stranger = api.__class__()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(other)}")
    assert stranger.get(f"/v1/refunds/{refund['id']}").status_code == 404
    assert stranger.post(f"/v1/refunds/{refund['id']}", {"metadata[a]": "b"}).status_code == 404
    assert stranger.post(f"/v1/refunds/{refund['id']}/cancel").status_code == 404
    assert stranger.get("/v1/refunds").json()["data"] == []
    before = written()
    assert stranger.post("/v1/refunds", {"charge": charge.id}).status_code == 404
    # a live key does not see test-mode charges: a test key never moves live money, and the other way round
    live = api.__class__()
    live.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(charge.merchant, livemode=True)}")
    assert live.post("/v1/refunds", {"charge": charge.id}).status_code == 404
    assert live.get(f"/v1/refunds/{refund['id']}").status_code == 404
    publishable = api.__class__()
    publishable.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(charge.merchant, kind='publishable')}")
    assert publishable.get(f"/v1/refunds/{refund['id']}").status_code == 403
    assert publishable.post("/v1/refunds", {"charge": charge.id}).status_code == 403
    assert written() == before


def test_list_filters_and_pages(api, merchant, charge):
    other_charge = credited_charge(merchant)
    ids = [create(api, charge=charge.id, amount=100).json()["id"] for _ in range(3)]
    other = create(api, charge=other_charge.id, amount=100).json()["id"]
    page = api.get("/v1/refunds", {"limit": 2}).json()
    assert page["has_more"] and [r["id"] for r in page["data"]] == [other, ids[2]]
    rest = api.get("/v1/refunds", {"limit": 2, "starting_after": ids[2]}).json()
    assert [r["id"] for r in rest["data"]] == [ids[1], ids[0]] and not rest["has_more"]
    assert [r["id"] for r in api.get("/v1/refunds", {"charge": charge.id}).json()["data"]] == ids[::-1]
    assert [r["id"] for r in api.get("/v1/refunds", {"payment_intent": other_charge.payment_intent_id})
            .json()["data"]] == [other]


def test_metadata_updates_and_cancel_gives_the_money_back(api, merchant, charge):
    refund = create(api, charge=charge.id, amount=400).json()
    updated = api.post(f"/v1/refunds/{refund['id']}", {"metadata[ticket]": "T-9"}).json()
    assert updated["metadata"] == {"ticket": "T-9"}
    assert api.post(f"/v1/refunds/{refund['id']}", {"amount": "5"}).json()["error"]["param"] == "amount"
    canceled = api.post(f"/v1/refunds/{refund['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    assert owed(merchant)["available"] == 10 * ONE_USDT and balance(AccountKind.MERCHANT_RESERVED,
                                                                    merchant=merchant) == 0
    assert Charge.objects.get(pk=charge.pk).amount_refunded == 0
    assert event_types(refund["id"]) == ["refund.created", "refund.updated", "refund.updated"]
    again = api.post(f"/v1/refunds/{refund['id']}/cancel")
    assert again.status_code == 400 and again.json()["error"]["code"] == "refund_unexpected_state"
    assert JournalTransaction.objects.filter(source_id=refund["id"]).count() == 2
    assert ledger_problems() == []


def test_a_restricted_key_needs_the_refunds_resource(api, charge, make_key):
    reader = api.__class__()
    key = make_key(charge.merchant, kind="restricted", permissions={"refunds": "read"})
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert reader.get("/v1/refunds").status_code == 200
    before = written()
    assert reader.post("/v1/refunds", {"charge": charge.id}).status_code == 403
    assert written() == before
