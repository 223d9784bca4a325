"""At least once, whatever happens to the sender: the `deliver_webhooks` command, in a process of its own, is killed
with SIGKILL at random moments during a burst of deliveries (each one within 0.1 s of the first delivery the
receiver sees after it started, which may be a late answer to the previous sender: most kills land mid-burst, and
the test checks that some events arrived while the senders were being killed) and restarted each time, at least 20 times; then a fresh `manage.py deliver_webhooks` runs to
the end. Every event is received at least once; the duplicates (an attempt answered but killed before it was
recorded is sent again when its lease ends) are counted and reported, never a failure.

The killed processes are forks of this test process that run the command (call_command), because starting
`manage.py` costs seconds of imports on a busy 2-core machine and 20 of them would take minutes; the last sender
is a real `manage.py` subprocess."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from payments.events import build_event
from payments.management.commands import deliver_webhooks  # noqa: F401  (imported once, before the forks)
from payments.models import Event, WebhookDelivery
from tests.processes import fork_child

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
EVENTS = 300
KILLS = int(os.environ.get("KILL_DEBUG_KILLS", 20))


def sender_env() -> dict:
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        GATEWAY_WEBHOOK_TIMEOUT_SECONDS="2", GATEWAY_WEBHOOK_LEASE_MARGIN_SECONDS="1",
        GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY="2", PYTHONUNBUFFERED="1",
    )
    return env


def start_sender(log: Path) -> subprocess.Popen:
    handle = log.open("w")
    proc = subprocess.Popen([sys.executable, "manage.py", "deliver_webhooks", "--poll", "0.2"], cwd=ROOT,
                            env=sender_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    deadline = time.monotonic() + 30
    while "delivering webhooks" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)
    return proc


def fork_sender(log: Path) -> int:
    """A child process running `deliver_webhooks` with the settings of sender_env() (a traceback goes to `log`)."""
    def send():
        with override_settings(GATEWAY_WEBHOOK_TIMEOUT_SECONDS=2, GATEWAY_WEBHOOK_LEASE_MARGIN_SECONDS=1,
                               GATEWAY_WEBHOOK_ENDPOINT_CONCURRENCY=2):
            call_command("deliver_webhooks", "--poll", "0.2")

    return fork_child(send, log=log)


def test_kill_9_during_a_burst_loses_nothing(merchant, receiver, make_endpoint, record_property):
    endpoint = make_endpoint(receiver.on("/slow/0.03"))
    events = [build_event(merchant=merchant, livemode=False, type="payment_intent.succeeded", obj_id=f"pi_kill{i}",
                          snapshot={"id": f"pi_kill{i}"}, sequence=1) for i in range(EVENTS)]
    Event.objects.bulk_create(events)
    ids = {e.id for e in events}
    rng = random.Random(os.environ.get("KILL_SEED", "webhooks"))

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "sender.log"
        kills = 0
        while kills < KILLS:
            sent = len(receiver.received)
            pid = fork_sender(Path(tmp) / "forked-sender.log")
            try:
                deadline = time.monotonic() + 30
                while len(receiver.received) == sent:  # once this sender delivers, the kill lands during the burst
                    assert time.monotonic() < deadline, f"sender {kills + 1} delivered nothing"
                    time.sleep(0.01)
                time.sleep(float(os.environ.get("KILL_DEBUG_SLEEP", 0)) or rng.uniform(0, 0.1))
            finally:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL  # killed, not crashed
            kills += 1
        received_during_kills = len({r.event["id"] for r in receiver.at("/slow/0.03")})
        # the kills landed during the burst: events were received while senders were being killed, and the last
        # kill still had work to interrupt (not everything was delivered before it)
        assert 0 < received_during_kills < EVENTS, received_during_kills

        proc = start_sender(log)
        try:
            deadline = time.monotonic() + 60
            while WebhookDelivery.objects.filter(endpoint=endpoint, status="succeeded").count() < EVENTS:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "not every delivery succeeded in time"
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    got = Counter(r.event["id"] for r in receiver.at("/slow/0.03"))
    assert set(got) == ids  # every event at least once, nothing foreign
    duplicates = sum(got.values()) - len(got)
    record_property("webhook_kill_duplicates", duplicates)
    print(f"\nkill -9 x{kills}: {len(got)} events received ({received_during_kills} while being killed), "
          f"{sum(got.values())} requests, {duplicates} duplicates")
