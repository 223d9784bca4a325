"""The portal's payments pages: the filtered list paged by keyset, the CSV export, an intent's detail and cancel;
every page scoped to the merchant and the mode of the session."""
import csv
import io
import json
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.test import Client

from payments.models import Event, PaymentIntent
from tests.payments.portal import (  # noqa: F401 (fixtures: shop, other)
    make_charge, make_delivery, make_event, make_intent, make_intents, make_unmatched, other, portal_merchant, shop,
)

XSS = '<script>alert("x")</script>'
XSS_ATTR = '"><img src=x onerror=alert(1)>'


def ids_of(response) -> list[str]:
    return [row["intent"].id for row in response.context["rows"]]


def export(client, query="") -> list[list[str]]:
    response = client.get("/portal/payments/export.csv" + ("?" + query if query else ""))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_pages_need_a_verified_login(db):
    anonymous = Client()
    for path in ("/portal/payments/", "/portal/payments/export.csv", "/portal/payments/pi_123/"):
        response = anonymous.get(path)
        assert response.status_code == 302 and response.url.startswith("/portal/login/")


def test_the_list_shows_only_the_merchants_intents_of_the_sessions_mode(client, shop, other):
    mine = make_intent(shop)
    make_intent(shop, livemode=True)
    make_intent(other)
    response = client.get("/portal/payments/")
    assert response.status_code == 200 and ids_of(response) == [mine.id]
    session = client.session
    session["portal_livemode"] = True
    session.save()
    live = client.get("/portal/payments/")
    assert len(ids_of(live)) == 1 and ids_of(live)[0] != mine.id


def test_keyset_pages_walk_every_intent_once_in_order_and_back(client, shop):
    # Given 120 intents, three of them created at the same instant (ties are ordered by id)
    intents = make_intents(shop, 120)
    same = intents[60].created
    PaymentIntent.objects.filter(pk__in=[i.id for i in intents[59:62]]).update(created=same)
    expected = [i.id for i in sorted(PaymentIntent.objects.filter(merchant=shop), key=lambda i: (i.created, i.id),
                                     reverse=True)]
    # When walking the "Older" links
    seen, pages, query = [], [], ""
    while True:
        response = client.get("/portal/payments/" + query)
        assert response.status_code == 200
        seen += ids_of(response)
        pages.append(response.context["page"])
        if response.context["page"].older is None:
            break
        query = f"?after={response.context['page'].older}"
    # Then every intent comes once, newest first, 50 a page
    assert seen == expected and [len(p.rows) for p in pages] == [50, 50, 20]
    # And "Newer" from the last page gives the second page back
    back = client.get(f"/portal/payments/?before={pages[2].newer}")
    assert ids_of(back) == expected[50:100] and back.context["page"].older == pages[1].older


@pytest.mark.parametrize("query, field", [
    ("amount_min=abc", "amount_min"), ("amount_min=1.234", "amount_min"), ("amount_min=-1", "amount_min"),
    ("created_from=2026-13-45", "created_from"), ("status=paid", "status"), ("network=solana", "network"),
    ("q=hello", "q"), ("metadata_value=x", "metadata_key"), ("amount_min=5&amount_max=1", "amount_max"),
    ("created_from=2026-02-01&created_to=2026-01-01", "created_to"), ("after=garbage", "after"),
    ("after=pi_" + "1" * 24, "after"), ("metadata_key=" + "k" * 41, "metadata_key"),
])
def test_bad_filters_are_form_errors_naming_the_field(client, shop, query, field):
    make_intent(shop)
    # The export ignores the page cursors (it takes every row the filters select).
    for path in ("/portal/payments/",) + (() if field == "after" else ("/portal/payments/export.csv",)):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400
        assert field in response.context["form"].errors, response.context["form"].errors


def test_a_control_character_in_a_filter_is_a_400(client, shop):
    assert client.get("/portal/payments/?q=%00").status_code == 400  # gateway.api.middleware.InputGuardMiddleware


def test_a_cursor_of_another_merchants_intent_is_refused(client, shop, other):
    make_intents(shop, 3)
    foreign = make_intent(other)
    response = client.get(f"/portal/payments/?after={foreign.id}")
    assert response.status_code == 400 and "after" in response.context["form"].errors


def test_filters(client, shop, networks):
    now = datetime.now(dt_timezone.utc)
    old = make_intent(shop, amount=500, created=now - timedelta(days=40), metadata={"order": "A-1"},
                      receipt_email="buyer@example.com")
    canceled = make_intent(shop, amount=2500, status=PaymentIntent.Status.CANCELED, metadata={"order": "A-2"})
    paid = make_intent(shop, amount=1999, address=True, metadata={"order": "A-3", "vip": "yes"})
    charge = make_charge(paid)

    def listed(query):
        response = client.get("/portal/payments/?" + query)
        assert response.status_code == 200, response.context["form"].errors
        return set(ids_of(response))

    assert listed("status=canceled") == {canceled.id}
    assert listed(f"created_to={(now - timedelta(days=30)).date()}") == {old.id}
    assert listed(f"created_from={(now - timedelta(days=1)).date()}") == {canceled.id, paid.id}
    assert listed("amount_min=19.99&amount_max=25") == {canceled.id, paid.id}
    assert listed("amount_max=5") == {old.id}
    assert listed("metadata_key=order&metadata_value=A-2") == {canceled.id}
    assert listed("metadata_key=vip") == {paid.id}
    assert listed(f"q={old.id}") == {old.id}
    assert listed(f"q={charge.id}") == {paid.id}
    assert listed(f"q={charge.transfer.tx_hash.upper().replace('0X', '0x')}") == {paid.id}
    assert listed(f"q={paid.deposit_address.address}") == {paid.id}
    assert listed("q=BUYER@example.com") == {old.id}
    assert listed("network=bsc&token=usdt") == {paid.id}
    assert listed("network=bsc&token=usdc") == set()
    assert listed("network=ethereum") == set()
    # The export takes the same filters
    rows = export(client, "status=canceled")
    assert [r[0] for r in rows[1:]] == [canceled.id]


def test_csv_has_every_filtered_row_with_metadata_as_json_and_no_formulas(client, shop, networks, settings):
    # Given intents whose text starts like spreadsheet formulas, and more of them than one chunk of the export
    from payments.portal import export as export_module
    settings.DEBUG = False
    plain = make_intents(shop, 25)
    PaymentIntent.objects.filter(pk__in=[i.id for i in plain[5:15]]).update(created=plain[5].created)  # ties
    risky = make_intent(shop, description="=HYPERLINK(\"http://evil\")", metadata={"note": "+1", "x": XSS},
                        receipt_email="a@example.com")
    for start in ("+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"):
        make_intent(shop, description=start)
    paid = make_intent(shop, amount=1234, address=True)
    charge = make_charge(paid)
    original = export_module.keyset_chunks

    def small_chunks(qs, *, fields, size=2000):
        return original(qs, fields=fields, size=7)

    export_module.keyset_chunks = small_chunks
    try:
        rows = export(client)
    finally:
        export_module.keyset_chunks = original
    header, body = rows[0], rows[1:]
    assert header[:3] == ["id", "created_utc", "status"] and header[-1] == "metadata"
    assert len(body) == 32 and len({r[0] for r in body}) == 32
    by_id = {r[0]: dict(zip(header, r)) for r in body}
    assert by_id[risky.id]["description"] == "'=HYPERLINK(\"http://evil\")"
    assert json.loads(by_id[risky.id]["metadata"]) == {"note": "+1", "x": XSS}
    descriptions = {r["description"] for r in by_id.values()}
    assert {"'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", "'\rx"} <= descriptions
    assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for r in body for cell in r)
    assert by_id[paid.id]["amount"] == "12.34" and by_id[paid.id]["network"] == "bsc"
    assert by_id[paid.id]["token"] == "usdt" and by_id[paid.id]["transaction_hash"] == charge.transfer.tx_hash


def test_the_export_never_holds_another_merchants_rows(client, shop, other):
    mine = make_intent(shop)
    make_intent(other)
    make_intent(shop, livemode=True)
    assert [r[0] for r in export(client)[1:]] == [mine.id]


def test_script_payloads_render_escaped(client, shop, networks):
    intent = make_intent(shop, description=XSS, metadata={XSS_ATTR[:40]: XSS, "k": XSS_ATTR}, address=True)
    make_charge(intent)
    for path in ("/portal/payments/", f"/portal/payments/{intent.id}/",
                 f"/portal/payments/?metadata_key=k&q={intent.id}"):
        page = client.get(path).content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert" in page
    response = client.get("/portal/payments/", {"metadata_key": "k", "metadata_value": XSS_ATTR})
    assert response.status_code == 200 and "<img src=x" not in response.content.decode()


def test_detail_shows_the_timeline_charges_with_explorer_links_unmatched_deposits_and_deliveries(
        client, shop, networks):
    from merchants import services as merchant_services

    intent = make_intent(shop, address=True)
    charge = make_charge(intent)
    unmatched = make_unmatched(intent, currency="usdc")
    created = make_event(shop, object_id=intent.id, type="payment_intent.created")
    succeeded = make_event(shop, object_id=intent.id, type="payment_intent.succeeded")
    charged = make_event(shop, object_id=charge.id, type="charge.succeeded")
    make_event(shop, object_id="pi_other", type="payment_intent.created")
    endpoint = merchant_services.webhook_endpoint_create(merchant=shop, livemode=False, url="https://1.1.1.1/h",
                                                         enabled_events=["*"])
    delivery = make_delivery(endpoint, succeeded, status_code=500, body="oops")

    response = client.get(f"/portal/payments/{intent.id}/")
    assert response.status_code == 200
    assert [e.id for e in response.context["events"]] == [created.id, succeeded.id, charged.id]
    page = response.content.decode()
    assert f"https://testnet.bscscan.com/tx/{charge.transfer.tx_hash}" in page
    assert f"https://testnet.bscscan.com/tx/{unmatched.transfer.tx_hash}" in page
    assert "1 USDT" in page and unmatched.id in page
    assert f"/portal/webhooks/{endpoint.id}/deliveries/{delivery.id}/" in page
    assert "Cancel payment" not in page  # succeeded: nothing to cancel


def test_live_charges_link_to_the_mainnet_explorer(client, shop, networks):
    session = client.session
    session["portal_livemode"] = True
    session.save()
    intent = make_intent(shop, livemode=True, address=True)
    charge = make_charge(intent, code="ethereum", currency="usdc", amount_base_units=19_990_000)
    page = client.get(f"/portal/payments/{intent.id}/").content.decode()
    assert f"https://etherscan.io/tx/{charge.transfer.tx_hash}" in page and "19.99 USDC" in page


def test_another_merchants_or_modes_intent_is_404_on_every_page(client, shop, other):
    foreign = make_intent(other)
    live = make_intent(shop, livemode=True)
    for intent in (foreign, live):
        for path in (f"/portal/payments/{intent.id}/", f"/portal/payments/{intent.id}/cancel"):
            assert client.get(path).status_code == 404
        assert client.post(f"/portal/payments/{intent.id}/cancel").status_code == 404
        intent.refresh_from_db()
        assert intent.status == PaymentIntent.Status.REQUIRES_ACTION
    assert client.get("/portal/payments/not-an-id/").status_code == 404
    assert not Event.objects.exists()


def test_cancel_asks_first_then_cancels_with_the_apis_service(client, shop):
    intent = make_intent(shop)
    confirm = client.get(f"/portal/payments/{intent.id}/cancel")
    assert confirm.status_code == 200 and b"Cancel this payment?" in confirm.content
    intent.refresh_from_db()
    assert intent.status == PaymentIntent.Status.REQUIRES_ACTION

    response = client.post(f"/portal/payments/{intent.id}/cancel", {"cancellation_reason": "duplicate"})
    assert response.status_code == 302 and response.url == f"/portal/payments/{intent.id}/"
    intent.refresh_from_db()
    assert intent.status == PaymentIntent.Status.CANCELED and intent.cancellation_reason == "duplicate"
    event = Event.objects.get(object_id=intent.id)
    assert event.type == "payment_intent.canceled"
    assert event.data["previous_attributes"] == {"status": "requires_action"}


def test_cancel_refusals_change_nothing(client, shop):
    intent = make_intent(shop)
    bad = client.post(f"/portal/payments/{intent.id}/cancel", {"cancellation_reason": "expired"})
    assert bad.status_code == 400 and "cancellation_reason" in bad.context["form"].errors
    done = make_intent(shop, status=PaymentIntent.Status.SUCCEEDED)
    refused = client.post(f"/portal/payments/{done.id}/cancel")
    assert refused.status_code == 400 and "status of succeeded" in refused.context["form"].non_field_errors()[0]
    for i in (intent, done):
        before = i.status
        i.refresh_from_db()
        assert i.status == before
    assert not Event.objects.exists()


def test_cancel_needs_the_csrf_token(db):
    browser = Client(enforce_csrf_checks=True)
    shop = portal_merchant("csrf@example.com", browser)
    intent = make_intent(shop)
    assert browser.post(f"/portal/payments/{intent.id}/cancel").status_code == 403
    intent.refresh_from_db()
    assert intent.status == PaymentIntent.Status.REQUIRES_ACTION
