"""`manage.py refunds list|send` for ops, and the beat task that does what `send` does."""
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from gateway.celery import app as celery_app
from settlements.refunds.services import refund_create

from .conftest import CUSTOMER

pytestmark = pytest.mark.usefixtures("ledger_ready")


def run(*args) -> str:
    out = StringIO()
    call_command("refunds", *args, stdout=out)
    return out.getvalue()


def test_list_and_send(charge, merchant):
    waiting = refund_create(merchant=merchant, livemode=False, charge=charge, amount=100)
    pending = refund_create(merchant=merchant, livemode=False, charge=charge, amount=200,
                            destination_address=CUSTOMER)
    listed = run("list")
    assert waiting.id in listed and pending.id in listed and "requires_action" in listed
    assert pending.id not in run("list", "--status", "requires_action")
    # the test network has no hot wallet here: the refund waits, and says why
    assert run("send") == "waiting 1\n"
    assert "waiting: hot_wallet_not_configured" in run("list", "--status", "pending")
    assert '"pending_reason": "hot_wallet_not_configured"' in run("list", "--json")


def test_the_beat_task_is_scheduled_and_registered():
    entry = settings.CELERY_BEAT_SCHEDULE["advance-refunds"]
    assert entry["task"] == "settlements.tasks.advance_refunds"
    celery_app.loader.import_default_modules()
    assert "settlements.tasks.advance_refunds" in celery_app.tasks
