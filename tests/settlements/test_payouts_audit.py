"""Money out by payouts leaves its audit trail: the API key for API calls, the portal user for addresses and the
schedule, the task or the command for automatic payouts; `audit verify` stays clean."""
import pytest
from django.core.management import call_command

from audit.models import AuditRecord
from audit.verify import audit_chain_verify
from settlements.models import PayoutAddress, PayoutSchedule
from settlements.payouts import payouts_run_automatic
from tests.audit.records import by_the_key, records
from tests.otp import totp_code
from tests.settlements.conftest import ONE_USDT, token
from tests.settlements.test_payout_addresses import portal  # noqa: F401 (a fixture)
from tests.settlements.payout_fixtures import RECIPIENT, create_payout, funded, usable_address

pytestmark = pytest.mark.usefixtures("ledger_ready")
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def test_api_payout_create_update_cancel_name_the_key(api, merchant, secret_key):
    # given a funded merchant with a usable payout address
    funded(merchant)
    usable_address(merchant)

    # when the API key creates a payout, changes its metadata, then cancels it
    created = create_payout(api, 500)
    payout_id = created.json()["id"]
    api.post(f"/v1/payouts/{payout_id}", {"metadata[order]": "42"})
    api.post(f"/v1/payouts/{payout_id}/cancel")

    # then three records name the key, the payout and the request
    create, update, cancel = by_the_key(merchant, "settlements.payout", payout_id,
                                        "payout.create", "payout.update", "payout.cancel")
    assert create.request_id == created["Request-Id"] and create.after["amount"] == 500
    assert create.after["address"] == RECIPIENT
    assert (update.before, update.after) == ({"metadata": {}}, {"metadata": {"order": "42"}})
    assert (cancel.before, cancel.after) == ({"status": "pending"}, {"status": "canceled"})
    assert audit_chain_verify().ok


def test_a_refused_payout_records_nothing(api, merchant):
    usable_address(merchant)  # nothing available
    assert create_payout(api, 500).status_code == 400
    assert not AuditRecord.objects.filter(action__startswith="payout.").exists()


def test_automatic_payouts_are_recorded_as_the_task_and_the_command_leaves_a_summary(merchant):
    funded(merchant, 10 * ONE_USDT)
    usable_address(merchant)
    PayoutSchedule.objects.create(merchant=merchant, interval="daily", minimum_amount=0)

    created, = payouts_run_automatic()

    record, = records("payout.create")
    assert (record.actor_type, record.actor_id, record.object_id) == ("system", "task:payouts_run_automatic",
                                                                      created.id)
    call_command("payouts", "run")
    summary, = records("payouts.run")
    assert summary.actor_id == "command:payouts run" and summary.after["automatic_created"] == []
    assert audit_chain_verify().ok


def test_portal_address_add_remove_and_schedule_name_the_user(portal, merchant):
    client, device = portal
    user = merchant.user
    client.post("/portal/payout-addresses/", {"token": str(token().id), "address": CHECKSUMMED,
                                              "otp_token": totp_code(device)})
    row = PayoutAddress.objects.get(merchant=merchant)
    removed = client.post(f"/portal/payout-addresses/{row.id}/remove", {"otp_token": totp_code(device)})
    client.post("/portal/payout-addresses/schedule", {"interval": "weekly", "weekly_anchor": "4",
                                                      "minimum_amount": "5000"})
    client.post("/portal/payout-addresses/schedule", {"interval": "daily", "weekly_anchor": "0",
                                                      "minimum_amount": "100"})

    add, = records("payout_address.add")
    remove, = records("payout_address.remove")
    first, second = records("payout_schedule.set")
    for record in (add, remove, first, second):
        assert (record.actor_type, record.actor_id, record.ip) == ("merchant_user", str(user.pk), "127.0.0.1")
    assert add.object_id == remove.object_id == str(row.pk) and add.after["address"] == CHECKSUMMED.lower()
    assert remove.request_id == removed["Request-Id"] and remove.before == {"removed_at": None}
    assert first.before is None and first.after == {"interval": "weekly", "weekly_anchor": 4, "minimum_amount": 5000}
    assert second.before == first.after and second.after["interval"] == "daily"
    assert audit_chain_verify().ok
