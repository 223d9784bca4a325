"""Two and three `manage.py deliver_webhooks` processes at once (real subprocesses, started together) share a burst
of events to three endpoints of a local receiver: every delivery is received at least once, and with no sender
killed, exactly once (the senders split the work by SKIP LOCKED claims and leases; a duplicate would mean two
senders claimed one delivery). Duplicates are counted and printed; the bound asserted is zero."""
import json
from collections import Counter

import pytest

from payments.events import build_event
from payments.models import Event, WebhookDelivery
from tests.processes import Processes, process_env, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(400)]

EVENTS = 200
PATHS = ("/ok", "/slow/0.01", "/slow/0.05")  # a fast endpoint and two slower ones


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.stop_all()


@pytest.mark.parametrize("senders", [2, 3])
def test_several_senders_deliver_each_event_once(senders, merchant, receiver, make_endpoint, processes,
                                                 record_property):
    endpoints = [make_endpoint(receiver.on(path)) for path in PATHS]
    env = process_env(GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY="4")
    started = [processes.manage("deliver_webhooks", "--poll", "0.2", env=env) for _ in range(senders)]
    for process, log in started:
        processes.wait_for_line(process, log, "delivering webhooks")

    # When a burst of events is written while they all run
    events = [build_event(merchant=merchant, livemode=False, type="payment_intent.succeeded", obj_id=f"pi_ms{i}",
                          snapshot={"id": f"pi_ms{i}"}, sequence=1) for i in range(EVENTS)]
    Event.objects.bulk_create(events)
    ids = {e.id for e in events}

    def all_sent():
        for process, log in started:
            assert process.poll() is None, log.read_text()
        return WebhookDelivery.objects.filter(status="succeeded").count() == EVENTS * len(endpoints)

    wait_until(all_sent, timeout=180, what="every delivery to succeed", interval=0.2)
    shares = []
    for process, log in started:
        assert Processes.stop(process) == 0, log.read_text()
        shares.append(json.loads(log.read_text().strip().splitlines()[-1])["succeeded"])  # the command's summary
    assert sum(shares) == EVENTS * len(PATHS)

    # Then each endpoint received each event, exactly once
    duplicates = 0
    for path in PATHS:
        got = Counter(r.event["id"] for r in receiver.at(path))
        assert set(got) == ids, path
        duplicates += sum(got.values()) - len(got)
    attempts = Counter(WebhookDelivery.objects.values_list("attempts", flat=True))
    record_property("webhook_multi_sender_duplicates", duplicates)
    print(f"\n{senders} senders, {EVENTS} events x {len(PATHS)} endpoints: {duplicates} duplicates; "
          f"delivered per sender {shares}; deliveries by attempts {dict(attempts)}")
    assert duplicates == 0
