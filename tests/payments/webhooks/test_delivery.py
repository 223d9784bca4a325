"""Delivery to a real local receiver: signatures, retries, redirects, timeouts, giving up, disabling, SSRF.

Transactional database: the sender works in a thread of its own and must see committed rows, as in production.
Time is moved by editing rows (`created`, `next_attempt_at`, `failing_since`), never by sleeping."""
import asyncio
import socket
import threading
import time
from datetime import timedelta

import pytest
import stripe
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from merchants.models import WebhookEndpoint
from payments.events import event_record
from payments.models import Event, WebhookAttempt, WebhookDelivery
from payments.webhooks.delivery import Dispatcher, deliver
from payments.webhooks.fanout import events_fan_out

from tests.conftest import FormClient

from .conftest import SECRET

pytestmark = pytest.mark.django_db(transaction=True)


def make_event(merchant, type="payment_intent.succeeded", *, livemode=False, obj_id=None):
    obj_id = obj_id or f"pi_{Event.objects.count() + 1:08d}"
    return event_record(merchant=merchant, livemode=livemode, type=type, obj_id=obj_id,
                        snapshot={"id": obj_id, "object": "payment_intent", "amount": 1999})


def verified(received, secret=SECRET):
    return stripe.Webhook.construct_event(received.body.decode(), received.headers["Stripe-Signature"], secret)


def delivery_of(endpoint, event):
    return WebhookDelivery.objects.get(endpoint=endpoint, event=event)


def make_due(delivery):
    WebhookDelivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now())


def wait_for(condition, *, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def start_dispatcher(**kwargs):
    """A dispatcher running in a thread of its own until the returned function is called (which waits for it to
    finish its requests in flight)."""
    started = threading.Event()
    running = {}

    async def main():
        running["loop"], running["stop"] = asyncio.get_running_loop(), asyncio.Event()
        started.set()
        await Dispatcher(**kwargs).run(stop=running["stop"])

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)

    def stop(*, then=lambda: None):
        running["loop"].call_soon_threadsafe(running["stop"].set)
        then()
        thread.join(30)
        assert not thread.is_alive()

    return stop


def test_an_event_is_posted_signed_and_the_attempt_recorded(merchant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.on("/ok"))
    event = make_event(merchant)

    counts = deliver(until_idle=True, duration=20)

    [got] = receiver.at("/ok")
    stripe_event = verified(got)
    assert stripe_event.id == event.id and stripe_event.type == "payment_intent.succeeded"
    assert stripe_event.data.object.amount == 1999 and got.headers["Content-Type"].startswith("application/json")
    delivery = delivery_of(endpoint, event)
    assert delivery.status == "succeeded" and delivery.attempts == 1 and delivery.delivered_at is not None
    [attempt] = delivery.attempt_rows.all()
    assert attempt.status_code == 200 and attempt.error == "" and '"received": true' in attempt.response_body
    assert counts["succeeded"] == 1 and Event.objects.get(id=event.id).fanned_out_at is not None


def test_fan_out_matches_mode_types_and_endpoint_lifetime_and_is_idempotent(merchant, receiver, make_endpoint):
    from tests.merchants.factories import MerchantFactory

    other = MerchantFactory()
    event = make_event(merchant, "payment_intent.succeeded")
    star = make_endpoint(receiver.on("/ok"))
    WebhookEndpoint.objects.filter(id=star.id).update(created=event.created - timedelta(seconds=1))
    typed = make_endpoint(receiver.on("/ok"), enabled_events=["payment_intent.succeeded", "charge.succeeded"])
    WebhookEndpoint.objects.filter(id=typed.id).update(created=event.created - timedelta(seconds=1))
    make_endpoint(receiver.on("/ok"), enabled_events=["payment_intent.canceled"])  # other types
    make_endpoint(receiver.on("/ok"), livemode=True)  # other mode
    make_endpoint(receiver.on("/ok"), merchant_=other)  # other merchant
    make_endpoint(receiver.on("/ok"), status="disabled")
    make_endpoint(receiver.on("/ok"), deleted=True)
    make_endpoint(receiver.on("/ok"))  # created after the event: does not get it

    assert events_fan_out(now=timezone.now()) == (1, 2)
    assert set(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == {star.id, typed.id}
    Event.objects.filter(id=event.id).update(fanned_out_at=None)  # as if a run died after its inserts
    assert events_fan_out(now=timezone.now()) == (1, 0)
    assert WebhookDelivery.objects.count() == 2


def test_a_500_is_retried_with_backoff_then_succeeds(merchant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.on("/flaky/1"))
    event = make_event(merchant)
    before = timezone.now()

    deliver(until_idle=True, duration=20)

    delivery = delivery_of(endpoint, event)
    assert delivery.status == "pending" and delivery.attempts == 1
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 48 <= wait <= 72 + 5  # 1 minute +-20%
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    [first] = delivery.attempt_rows.all()
    assert first.status_code == 500 and "500" in first.response_body

    deliver(until_idle=True, duration=20)  # not due yet: nothing sent
    assert len(receiver.at("/flaky/1")) == 1

    make_due(delivery)
    deliver(until_idle=True, duration=20)
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2
    assert [a.status_code for a in delivery.attempt_rows.order_by("started_at")] == [500, 200]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert {verified(r).id for r in receiver.at("/flaky/1")} == {event.id}


def test_a_redirect_is_not_followed_and_counts_as_a_failure(merchant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.on("/redirect"))
    event = make_event(merchant)
    deliver(until_idle=True, duration=20)
    assert len(receiver.at("/redirect")) == 1 and receiver.at("/ok") == []
    delivery = delivery_of(endpoint, event)
    assert delivery.status == "pending" and delivery.attempts == 1
    [attempt] = delivery.attempt_rows.all()
    assert attempt.status_code == 302 and "Redirect not followed" in attempt.error


@override_settings(GATEWAY_WEBHOOK_TIMEOUT_SECONDS=0.5)
def test_a_timeout_is_recorded_as_a_failed_attempt(merchant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.on("/slow/3"))
    event = make_event(merchant)
    deliver(until_idle=True, duration=20)
    delivery = delivery_of(endpoint, event)
    assert delivery.status == "pending" and delivery.attempts == 1
    [attempt] = delivery.attempt_rows.all()
    assert attempt.status_code is None and "Timed out after 0.5 s" in attempt.error


def test_connection_refused_and_first_kb_of_the_body(merchant, receiver, make_endpoint):
    from tests.chain import free_port

    dead = make_endpoint(f"http://127.0.0.1:{free_port()}/hook")
    big = make_endpoint(receiver.on("/big"))
    event = make_event(merchant)
    deliver(until_idle=True, duration=20)
    [refused] = delivery_of(dead, event).attempt_rows.all()
    assert refused.status_code is None and refused.error and not refused.error.startswith("Refused")
    [ok] = delivery_of(big, event).attempt_rows.all()
    assert ok.status_code == 200 and ok.response_body == "x" * 1024


def test_a_delivery_fails_for_good_after_3_days(merchant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.on("/status/500"))
    event = make_event(merchant)
    events_fan_out(now=timezone.now())
    delivery = delivery_of(endpoint, event)
    WebhookDelivery.objects.filter(id=delivery.id).update(created=timezone.now() - timedelta(days=3, seconds=1),
                                                          attempts=9)
    deliver(until_idle=True, duration=20)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 10 and delivery.next_attempt_at is None
    endpoint.refresh_from_db()
    assert endpoint.status == "enabled"  # this endpoint has only just started failing
    assert mail.outbox == []


def test_an_endpoint_failing_for_3_days_is_disabled_and_its_merchant_emailed(merchant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.on("/status/503"))
    other = make_endpoint(receiver.on("/ok"))
    WebhookEndpoint.objects.filter(id=endpoint.id).update(failing_since=timezone.now() - timedelta(days=3, minutes=1))
    event = make_event(merchant)
    later = make_event(merchant)

    deliver(until_idle=True, duration=20)

    endpoint.refresh_from_db()
    assert endpoint.status == "disabled" and endpoint.disabled_reason
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [merchant.email] and endpoint.id in mail.outbox[0].body
    assert WebhookEndpoint.objects.get(id=other.id).status == "enabled"
    assert delivery_of(other, event).status == "succeeded" and delivery_of(other, later).status == "succeeded"
    # its other due deliveries are not sent any more: failed at the next claim (a resend brings them back)
    WebhookDelivery.objects.filter(endpoint=endpoint).update(status="pending", next_attempt_at=timezone.now())
    sent = len(receiver.at("/status/503"))
    deliver(until_idle=True, duration=20)
    assert len(receiver.at("/status/503")) == sent
    assert set(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("status", flat=True)) == {"failed"}
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("url, livemode", [
    ("http://10.0.0.1:9/hook", False),
    ("http://169.254.169.254/latest/meta-data", False),
    ("http://[::ffff:10.0.0.1]:9/hook", False),
    ("http://0x7f000001:{port}/ok", True),
    ("http://localhost:{port}/ok", True),
    ("http://127.0.0.1:{port}/ok", True),
])
def test_forbidden_addresses_are_refused_at_delivery_without_connecting(merchant, receiver, make_endpoint, url,
                                                                         livemode):
    port = receiver.url.rsplit(":", 1)[1]
    endpoint = make_endpoint(url.format(port=port), livemode=livemode)  # a row the API would have refused
    event = make_event(merchant, livemode=livemode)
    deliver(until_idle=True, duration=20)
    delivery = delivery_of(endpoint, event)
    [attempt] = delivery.attempt_rows.all()
    assert attempt.status_code is None and attempt.error.startswith("Refused"), attempt.error
    assert attempt.duration_ms < 1000 and receiver.received == []
    assert delivery.status == "pending" and delivery.attempts == 1


def test_a_name_that_resolves_to_a_private_address_at_delivery_is_refused_before_connecting(
        merchant, make_key, monkeypatch):
    # Given a live-mode https endpoint, accepted by the API because its name resolved to a public address
    host, answer = "hooks.rebind.example", {"address": "93.184.216.34"}
    real_getaddrinfo, looked_up, connects = socket.getaddrinfo, [], []

    def getaddrinfo(name, port, *args, **kwargs):  # the resolver gateway.ssrf uses; nothing else is faked
        if name != host:
            return real_getaddrinfo(name, port, *args, **kwargs)
        looked_up.append(answer["address"])
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (answer["address"], port or 0))]

    async def sock_connect(loop, sock, address):  # nothing may leave 127.0.0.1, even if the guard broke
        connects.append(address)
        raise ConnectionRefusedError(f"the test refuses to connect to {address}")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(asyncio.selector_events.BaseSelectorEventLoop, "sock_connect", sock_connect)
    api = FormClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(merchant, livemode=True)}")
    response = api.post("/v1/webhook_endpoints", {"url": f"https://{host}/hook", "enabled_events[]": "*"})
    assert response.status_code == 200, response.content
    endpoint = WebhookEndpoint.objects.get(id=response.json()["id"])
    assert endpoint.livemode and looked_up == ["93.184.216.34"]
    event = make_event(merchant, livemode=True)

    # when, at delivery, the same name resolves to a private address (DNS rebinding)
    answer["address"] = "10.0.0.7"
    deliver(until_idle=True, duration=20)

    # then the delivery is refused before any connection, and recorded as a failed attempt that says why
    assert looked_up == ["93.184.216.34", "10.0.0.7"] and connects == []
    delivery = delivery_of(endpoint, event)
    [attempt] = delivery.attempt_rows.all()
    assert attempt.status_code is None and attempt.response_body == ""
    assert attempt.error == f"Refused: {host} resolves to a forbidden address (10.0.0.7)."
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.next_attempt_at > timezone.now()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None


@override_settings(GATEWAY_WEBHOOK_ALLOW_LOOPBACK=False)
def test_loopback_is_refused_in_test_mode_too_unless_allowed(merchant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.on("/ok"))
    event = make_event(merchant)
    deliver(until_idle=True, duration=20)
    assert receiver.received == []
    assert delivery_of(endpoint, event).attempt_rows.get().error.startswith("Refused")


def test_while_a_secret_is_rolled_both_signatures_are_sent_and_each_verifies(merchant, receiver, make_endpoint):
    new_secret = "whsec_new_fedcba9876543210fedcba9876543210"
    make_endpoint(receiver.on("/ok"), secret=new_secret, previous_secret=SECRET,
                  previous_secret_expires_at=timezone.now() + timedelta(hours=24))
    event = make_event(merchant)
    deliver(until_idle=True, duration=20)
    [got] = receiver.at("/ok")
    header = got.headers["Stripe-Signature"]
    assert header.count("v1=") == 2
    assert verified(got, new_secret).id == event.id and verified(got, SECRET).id == event.id
    with pytest.raises(stripe.SignatureVerificationError):
        verified(got, "whsec_someone_else")


def test_an_expired_previous_secret_no_longer_signs(merchant, receiver, make_endpoint):
    make_endpoint(receiver.on("/ok"), secret="whsec_new", previous_secret=SECRET,
                  previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    make_event(merchant)
    deliver(until_idle=True, duration=20)
    [got] = receiver.at("/ok")
    assert got.headers["Stripe-Signature"].count("v1=") == 1
    verified(got, "whsec_new")
    with pytest.raises(stripe.SignatureVerificationError):
        verified(got, SECRET)


def test_the_celery_task_delivers_too(merchant, receiver, make_endpoint):
    from payments.tasks import deliver_webhooks

    endpoint = make_endpoint(receiver.on("/ok"))
    event = make_event(merchant)
    counts = deliver_webhooks.apply(kwargs={"duration": 10}).get()
    assert counts["succeeded"] == 1 and delivery_of(endpoint, event).status == "succeeded"


# A timeout far beyond the test's own waits (at most about 95 s on a slow machine): no hanging request ends before
# the asserts, however slow the machine.
@override_settings(GATEWAY_WEBHOOK_TIMEOUT_SECONDS=600)
def test_a_sender_stopped_while_it_fans_out_claims_nothing_more(merchant, receiver, make_endpoint):
    # Given a due delivery, and a sender that is told to stop while its fan-out runs (as SIGTERM, or the end of a
    # test, can come at any line)
    endpoint = make_endpoint(receiver.on("/ok"))
    event = make_event(merchant)

    class StoppedDuringFanOut(Dispatcher):
        async def run(self, **kwargs):
            self.loop = asyncio.get_running_loop()
            return await super().run(**kwargs)

        def _fan_out_batch(self):  # in the database thread: the stop is set on the loop, as a signal handler does
            fanned = super()._fan_out_batch()
            stopped = threading.Event()
            self.loop.call_soon_threadsafe(lambda: (self.stop.set(), stopped.set()))
            assert stopped.wait(10)
            return fanned

    # when it runs
    counts = asyncio.run(StoppedDuringFanOut().run(stop=asyncio.Event()))

    # then it fanned the event out and stopped there: nothing claimed, nothing sent, the delivery still due
    assert counts["fanned_out"] == 1 and counts["claimed"] == 0
    delivery = delivery_of(endpoint, event)
    assert delivery.status == "pending" and delivery.attempts == 0 and delivery.next_attempt_at <= timezone.now()
    assert receiver.at("/ok") == [] and not WebhookAttempt.objects.exists()


def test_endpoints_that_hang_hold_only_the_slow_lanes_share_and_a_healthy_one_is_still_delivered(
        merchant, receiver, hanging, make_endpoint, settings):
    # Given 40 endpoints that are failing and now hang until the timeout, each with more due deliveries than
    # its budget (40 x 32 requests would fill the sender's 1,000), beside one healthy endpoint
    share = int(settings.GATEWAY_WEBHOOK_MAX_IN_FLIGHT * settings.GATEWAY_WEBHOOK_SLOW_LANE_SHARE)
    assert 40 * settings.GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY > settings.GATEWAY_WEBHOOK_MAX_IN_FLIGHT > share
    hung = [make_endpoint(hanging.on(f"/hang/{n}"), failing_since=timezone.now() - timedelta(hours=1))
            for n in range(40)]
    healthy = make_endpoint(receiver.on("/ok"))
    backlog = {make_event(merchant).id for _ in range(40)}

    stop = start_dispatcher(poll_seconds=0.1)
    try:
        # when the slow lane has taken its share of the sender with requests that hang
        wait_for(lambda: hanging.count() >= share, seconds=20, message=f"{hanging.count()} requests hang")
        wait_for(lambda: {r.event["id"] for r in receiver.at("/ok")} >= backlog, seconds=10,
                 message="the healthy endpoint's backlog was not delivered")
        # then new events reach the healthy endpoint, one after another, over several of the slow lane's pauses
        # (long enough for the failing endpoints to fill the whole sender if nothing held them back)
        for _ in range(6):
            event = make_event(merchant)
            wait_for(lambda: event.id in {r.event["id"] for r in receiver.at("/ok")}, seconds=10,
                     message="an event to the healthy endpoint was held up by the hanging ones")
            time.sleep(0.5)
        # while the hanging requests are still in flight, never more of them than the slow lane's share
        assert hanging.count() == share
        assert not WebhookAttempt.objects.filter(delivery__endpoint__in=hung).exists()
    finally:
        stop(then=hanging.close)  # the hanging requests end (connection closed) and are recorded as failures
    assert WebhookDelivery.objects.filter(endpoint=healthy, status="succeeded").count() == 46
    assert WebhookAttempt.objects.filter(delivery__endpoint__in=hung).count() == share


def test_a_backlog_is_fanned_out_in_bounded_transactions_and_a_failed_claim_undoes_only_the_last(
        merchant, receiver, make_endpoint, monkeypatch):
    from payments.webhooks import delivery as delivery_module

    # Given five events not fanned out, batches of two, and a claim that fails
    monkeypatch.setattr(delivery_module, "FAN_OUT_BATCH", 2)
    make_endpoint(receiver.on("/ok"))
    events = [make_event(merchant) for _ in range(5)]

    class ClaimFails(Dispatcher):
        def _claim(self, *args):
            raise RuntimeError("the claim failed")

    sender = ClaimFails()
    sender.stop = asyncio.Event()
    # when a step fans out and claims
    with pytest.raises(RuntimeError):
        sender._step(True, (10, [], [], [], 10))

    # then the two full batches stayed fanned out (each its own transaction); the last batch went with the claim
    fanned = Event.objects.filter(pk__in=[e.pk for e in events], fanned_out_at__isnull=False).count()
    assert fanned == 4 and WebhookDelivery.objects.count() == 4
    # and the next step fans out the rest
    again = Dispatcher()
    again.stop = asyncio.Event()
    assert again._step(True, None) == (1, [])
    assert Event.objects.filter(pk__in=[e.pk for e in events], fanned_out_at__isnull=True).count() == 0
