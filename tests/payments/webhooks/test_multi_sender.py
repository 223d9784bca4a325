"""Three, then two `manage.py deliver_webhooks` processes at once (real subprocesses, started together) share bursts
of events to three endpoints of a local receiver: every delivery is received at least once, and no delivery is ever
sent by two senders: each request the receiver got is an attempt some sender recorded, and each delivery has one
success. So the only duplicates without kills are retries of attempts recorded as failed (a timeout), counted and
printed; the bound asserted is zero duplicates beyond those (none at all in the runs here, once the receiver
accepted every connection at once). (Duplicates after a kill -9 are test_kill.py's.)"""
import json
from collections import Counter

import pytest

from payments.events import build_event
from payments.models import Event, WebhookAttempt, WebhookDelivery
from tests.processes import Processes, process_env, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(400)]

EVENTS = 200
PATHS = ("/ok", "/slow/0.01", "/slow/0.05")  # a fast endpoint and two slower ones


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.stop_all()


def burst(merchant, tag: str) -> set[str]:
    events = [build_event(merchant=merchant, livemode=False, type="payment_intent.succeeded", obj_id=f"pi_{tag}{i}",
                          snapshot={"id": f"pi_{tag}{i}"}, sequence=1) for i in range(EVENTS)]
    Event.objects.bulk_create(events)
    return {e.id for e in events}


def delivered(senders, expected: int) -> bool:
    for process, log in senders:
        assert process.poll() is None, log.read_text()
    return WebhookDelivery.objects.filter(status="succeeded").count() == expected


def duplicates_of(receiver, ids: set[str]) -> tuple[int, int]:
    """(requests beyond the first per endpoint and event, retries of attempts recorded as failed), after checking
    that each endpoint got each event, that every request is a recorded attempt and that no delivery succeeded twice:
    no delivery was sent by two senders."""
    duplicates = retried = 0
    for path in PATHS:
        got = Counter(r.event["id"] for r in receiver.at(path) if r.event["id"] in ids)
        assert set(got) == ids, path
        duplicates += sum(got.values()) - len(got)
        attempts = dict(WebhookDelivery.objects.filter(endpoint__url=receiver.on(path), event_id__in=ids)
                        .values_list("event_id", "attempts"))
        assert attempts == dict(got), path  # each request an attempt recorded
        assert WebhookAttempt.objects.filter(delivery__endpoint__url=receiver.on(path), delivery__event_id__in=ids,
                                             status_code=200).count() == len(ids)  # one success per delivery
        retried += sum(n - 1 for n in attempts.values())
    return duplicates, retried


def stop(sender) -> int:
    """Stop a sender (SIGTERM: it finishes what is in flight); what it delivered, from its summary line."""
    process, log = sender
    assert Processes.stop(process) == 0, log.read_text()
    return json.loads(log.read_text().strip().splitlines()[-1])["succeeded"]


def test_three_then_two_senders_deliver_each_event_once(merchant, receiver, make_endpoint, processes,
                                                        record_property):
    for path in PATHS:
        make_endpoint(receiver.on(path))
    env = process_env()
    senders = [processes.manage("deliver_webhooks", "--poll", "0.2", env=env) for _ in range(3)]
    for process, log in senders:
        processes.wait_for_line(process, log, "delivering webhooks")
    report = []

    # When a burst of events is written while three senders run, then another while two of them run
    for running, tag in ((3, "three"), (2, "two")):
        if len(senders) > running:
            report.append(f"sender stopped after delivering {stop(senders.pop())}")
        ids = burst(merchant, tag)
        expected = WebhookDelivery.objects.filter(status="succeeded").count() + EVENTS * len(PATHS)
        wait_until(lambda: delivered(senders, expected), timeout=180, what=f"every delivery of {tag} to succeed",
                   interval=0.2)
        # Then each endpoint received each event, and no delivery was sent by two senders
        duplicates, retried = duplicates_of(receiver, ids)
        record_property(f"webhook_{tag}_senders_duplicates", duplicates)
        report.append(f"{running} senders, {EVENTS} events x {len(PATHS)} endpoints: {duplicates} duplicates "
                      f"({retried} retries of failed attempts)")
        assert duplicates - retried == 0
    shares = [stop(sender) for sender in senders]
    assert not WebhookDelivery.objects.exclude(status="succeeded").exists()
    print("\n" + "; ".join(report) + f"; the two left delivered {shares} in all")
