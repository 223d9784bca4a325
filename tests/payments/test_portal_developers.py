"""The portal's developer pages: webhook endpoints (create, edit, disable, test event, roll the secret, delivery log,
resend) and the event log; every page scoped to the merchant and the session's mode."""
import json

import pytest
from django.test import Client

from merchants import services as merchant_services
from merchants.event_types import TEST_EVENT_TYPE
from merchants.models import WebhookEndpoint
from payments.models import Event, WebhookDelivery
from tests.payments.portal import make_delivery, make_event, other, shop  # noqa: F401 (fixtures)

URL = "https://1.1.1.1/hooks"  # a public literal: nothing is sent by these tests
XSS = '<script>alert("x")</script>'


def endpoint_of(merchant, *, url=URL, events=("*",), livemode=False):
    return merchant_services.webhook_endpoint_create(merchant=merchant, livemode=livemode, url=url,
                                                     enabled_events=list(events))


def test_the_pages_need_a_verified_login(db):
    anonymous = Client()
    for path in ("/portal/webhooks/", "/portal/webhooks/new", "/portal/events/"):
        response = anonymous.get(path)
        assert response.status_code == 302 and response.url.startswith("/portal/login/")


def test_create_shows_the_secret_once(client, shop):
    response = client.post("/portal/webhooks/new", {"url": URL, "description": "orders",
                                                    "enabled_events": ["charge.succeeded", "payment_intent.succeeded"]})
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(merchant=shop)
    assert (endpoint.url, endpoint.livemode, endpoint.description) == (URL, False, "orders")
    assert endpoint.enabled_events == ["charge.succeeded", "payment_intent.succeeded"]
    assert endpoint.secret.startswith("whsec_") and endpoint.secret in response.content.decode()
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    assert 'src="/static/portal/copy.js"' in response.content.decode()
    for path in ("/portal/webhooks/", f"/portal/webhooks/{endpoint.id}/"):
        page = client.get(path)
        assert page.status_code == 200 and endpoint.secret not in page.content.decode()


def test_all_events_wins_over_a_list(client, shop):
    client.post("/portal/webhooks/new", {"url": URL, "enabled_events": ["*", "charge.succeeded"]})
    assert WebhookEndpoint.objects.get(merchant=shop).enabled_events == ["*"]


@pytest.mark.parametrize("data, field", [
    ({"url": "ftp://1.1.1.1/x", "enabled_events": ["*"]}, "url"),
    ({"url": "http://10.0.0.1/hook", "enabled_events": ["*"]}, "url"),
    ({"url": "https://1.1.1.1/x"}, "enabled_events"),
    ({"url": "https://1.1.1.1/x", "enabled_events": ["charge.exploded"]}, "enabled_events"),
    ({"enabled_events": ["*"]}, "url"),
    ({"url": "https://1.1.1.1/x", "enabled_events": ["*"], "description": "a\x00b"}, "description"),
])
def test_bad_endpoint_forms_name_the_field_and_write_nothing(client, shop, data, field):
    response = client.post("/portal/webhooks/new", data)
    assert response.status_code == 400 and field in response.context["form"].errors
    assert not WebhookEndpoint.objects.exists()


def test_live_mode_endpoints_need_https(client, shop):
    session = client.session
    session["portal_livemode"] = True
    session.save()
    response = client.post("/portal/webhooks/new", {"url": "http://1.1.1.1/x", "enabled_events": ["*"]})
    assert response.status_code == 400 and "https" in str(response.context["form"].errors["url"])
    assert client.post("/portal/webhooks/new", {"url": URL, "enabled_events": ["*"]}).status_code == 200
    assert WebhookEndpoint.objects.get().livemode is True
    session["portal_livemode"] = False
    session.save()
    assert list(client.get("/portal/webhooks/").context["endpoints"]) == []


def test_edit_changes_url_description_and_events(client, shop):
    endpoint = endpoint_of(shop)
    form = client.get(f"/portal/webhooks/{endpoint.id}/edit")
    assert form.status_code == 200 and form.context["form"].initial["url"] == URL
    response = client.post(f"/portal/webhooks/{endpoint.id}/edit", {
        "url": "https://8.8.8.8/new", "description": "new", "enabled_events": ["charge.reversed"]})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.description, endpoint.enabled_events) == (
        "https://8.8.8.8/new", "new", ["charge.reversed"])
    refused = client.post(f"/portal/webhooks/{endpoint.id}/edit",
                          {"url": "http://169.254.169.254/", "enabled_events": ["*"]})
    assert refused.status_code == 400 and "url" in refused.context["form"].errors
    endpoint.refresh_from_db()
    assert endpoint.url == "https://8.8.8.8/new"


def test_disable_and_enable(client, shop):
    endpoint = endpoint_of(shop)
    assert client.post(f"/portal/webhooks/{endpoint.id}/toggle", {"action": "disable"}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.status == "disabled" and endpoint.disabled_reason
    client.post(f"/portal/webhooks/{endpoint.id}/toggle", {"action": "enable"})
    endpoint.refresh_from_db()
    assert endpoint.status == "enabled" and endpoint.disabled_reason == ""


def test_a_test_event_goes_to_that_endpoint_only(client, shop):
    endpoint = endpoint_of(shop, events=["charge.succeeded"])
    bystander = endpoint_of(shop, url="https://8.8.8.8/all")
    response = client.post(f"/portal/webhooks/{endpoint.id}/test")
    delivery = WebhookDelivery.objects.get()
    assert response.status_code == 302 and response.url == f"/portal/webhooks/{endpoint.id}/deliveries/{delivery.id}/"
    assert delivery.endpoint_id == endpoint.id and delivery.status == "pending" and delivery.next_attempt_at
    event = delivery.event
    assert event.type == TEST_EVENT_TYPE and event.object_id == endpoint.id and event.fanned_out_at is not None
    assert event.data["object"]["id"] == endpoint.id and "secret" not in event.data["object"]
    # The fan-out finds nothing to do: the bystander subscribed to everything gets nothing
    from django.utils import timezone
    from payments.webhooks.fanout import events_fan_out
    assert events_fan_out(now=timezone.now()) == (0, 0)
    assert not WebhookDelivery.objects.filter(endpoint=bystander).exists()


def test_a_disabled_endpoint_gets_no_test_event(client, shop):
    endpoint = endpoint_of(shop)
    merchant_services.webhook_endpoint_update(endpoint=endpoint, disabled=True)
    response = client.post(f"/portal/webhooks/{endpoint.id}/test", follow=True)
    assert b"enable it to send it a test event" in response.content
    assert not Event.objects.exists() and not WebhookDelivery.objects.exists()


def test_roll_asks_then_shows_the_new_secret_once(client, shop):
    endpoint = endpoint_of(shop)
    old = endpoint.secret
    assert client.get(f"/portal/webhooks/{endpoint.id}/roll").status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.secret == old
    response = client.post(f"/portal/webhooks/{endpoint.id}/roll", {"grace_hours": "24"})
    endpoint.refresh_from_db()
    assert response.status_code == 200 and endpoint.secret != old and endpoint.secret in response.content.decode()
    assert endpoint.previous_secret == old and endpoint.previous_secret_expires_at is not None
    bad = client.post(f"/portal/webhooks/{endpoint.id}/roll", {"grace_hours": "9999"})
    assert bad.status_code == 400 and "grace_hours" in bad.context["form"].errors
    secret = endpoint.secret
    endpoint.refresh_from_db()
    assert endpoint.secret == secret


def test_the_delivery_log_shows_request_and_response_and_resends(client, shop):
    endpoint = endpoint_of(shop)
    event = make_event(shop, type="payment_intent.succeeded", object_id="pi_1",
                       data={"object": {"id": "pi_1", "description": XSS}})
    delivery = make_delivery(endpoint, event, status_code=500, body=f"<html>{XSS}</html>")
    listed = client.get(f"/portal/webhooks/{endpoint.id}/")
    assert [d.id for d in listed.context["page"].rows] == [delivery.id]
    page = client.get(f"/portal/webhooks/{endpoint.id}/deliveries/{delivery.id}/")
    html = page.content.decode()
    assert page.status_code == 200 and "HTTP 500" in html and "<script>alert" not in html
    assert "&lt;html&gt;&lt;script&gt;" in html and json.loads(page.context["request_body"])["id"] == event.id
    response = client.post(f"/portal/webhooks/{endpoint.id}/deliveries/{delivery.id}/resend")
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at is not None


def test_script_payloads_in_urls_and_descriptions_render_escaped(client, shop):
    endpoint = endpoint_of(shop, url='https://1.1.1.1/"><script>alert(1)</script>')
    merchant_services.webhook_endpoint_update(endpoint=endpoint, description=XSS)
    for path in ("/portal/webhooks/", f"/portal/webhooks/{endpoint.id}/", f"/portal/webhooks/{endpoint.id}/edit"):
        html = client.get(path).content.decode()
        assert "<script>alert" not in html and "&lt;script&gt;alert" in html


def test_another_merchants_or_modes_endpoints_deliveries_and_events_are_404(client, shop, other):
    foreign = endpoint_of(other)
    live = endpoint_of(shop, livemode=True)
    mine = endpoint_of(shop)
    foreign_event = make_event(other, object_id="pi_2")
    foreign_delivery = make_delivery(foreign, foreign_event)
    for endpoint in (foreign, live):
        for path in ("/", "/edit", "/roll", f"/deliveries/{foreign_delivery.id}/"):
            assert client.get(f"/portal/webhooks/{endpoint.id}{path}").status_code == 404
        for path in ("/edit", "/toggle", "/test", "/roll", f"/deliveries/{foreign_delivery.id}/resend"):
            assert client.post(f"/portal/webhooks/{endpoint.id}{path}", {"url": URL, "enabled_events": ["*"],
                                                                         "grace_hours": "0"}).status_code == 404
    # Another endpoint's delivery through one's own endpoint
    assert client.get(f"/portal/webhooks/{mine.id}/deliveries/{foreign_delivery.id}/").status_code == 404
    assert client.post(f"/portal/webhooks/{mine.id}/deliveries/{foreign_delivery.id}/resend").status_code == 404
    assert client.get(f"/portal/webhooks/{mine.id}/deliveries/99999999999999999999/").status_code == 404
    assert client.get(f"/portal/events/{foreign_event.id}/").status_code == 404
    assert client.get("/portal/events/not-an-id/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.url == URL and foreign.status == "enabled"
    foreign_delivery.refresh_from_db()
    assert foreign_delivery.status == "failed"
    assert Event.objects.count() == 1


def test_the_event_log_filters_by_type_pages_and_shows_the_payload(client, shop, other):
    first = make_event(shop, type="payment_intent.created", object_id="pi_a",
                       data={"object": {"id": "pi_a", "metadata": {"k": XSS}}})
    second = make_event(shop, type="charge.succeeded", object_id="ch_a")
    make_event(other, type="charge.succeeded", object_id="ch_b")
    make_event(shop, livemode=True, type="charge.succeeded", object_id="ch_c")
    listed = client.get("/portal/events/")
    assert [e.id for e in listed.context["page"].rows] == [second.id, first.id]
    filtered = client.get("/portal/events/?type=charge.succeeded")
    assert [e.id for e in filtered.context["page"].rows] == [second.id]
    assert client.get("/portal/events/?type=nope").status_code == 400
    assert client.get("/portal/events/?after=garbage").status_code == 400
    detail = client.get(f"/portal/events/{first.id}/")
    html = detail.content.decode()
    assert detail.status_code == 200 and "<script>alert" not in html and "&lt;script&gt;" in html
    assert json.loads(detail.context["payload"])["data"]["object"]["id"] == "pi_a"


def test_event_log_pages(client, shop):
    events = [make_event(shop, object_id=f"pi_{i}") for i in range(55)]
    first = client.get("/portal/events/")
    second = client.get(f"/portal/events/?after={first.context['page'].older}")
    ids = [e.id for e in first.context["page"].rows] + [e.id for e in second.context["page"].rows]
    assert sorted(ids) == sorted(e.id for e in events) and len(set(ids)) == 55
    assert second.context["page"].older is None
