"""Refunds leave their audit trail: the API key (create, metadata, cancel), the staff user (an unmatched deposit
refunded from the admin), the customer with their IP (the claim page), the command's summary; `audit verify` stays
clean."""
import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditRecord
from audit.verify import audit_chain_verify
from settlements.refunds.models import Refund
from settlements.refunds.services import refund_create
from tests.audit.records import by_the_key, records

from .conftest import CHECKSUMMED, CUSTOMER, unmatched_deposit

pytestmark = pytest.mark.usefixtures("ledger_ready")


def test_api_refund_create_update_cancel_name_the_key(api, merchant, charge):
    created = api.post("/v1/refunds", {"charge": charge.id, "amount": 300})
    refund_id = created.json()["id"]
    api.post(f"/v1/refunds/{refund_id}", {"metadata[ticket]": "7"})
    api.post(f"/v1/refunds/{refund_id}/cancel")

    create, update, cancel = by_the_key(merchant, "settlements.refund", refund_id,
                                        "refund.create", "refund.update", "refund.cancel")
    assert create.request_id == created["Request-Id"] and create.after["amount"] == 300
    assert "claim_token" not in create.after  # the customer's link is a credential
    assert (update.before, update.after) == ({"metadata": {}}, {"metadata": {"ticket": "7"}})
    assert (cancel.before, cancel.after) == ({"status": "requires_action"}, {"status": "canceled"})
    assert audit_chain_verify().ok


def test_a_refused_refund_records_nothing(api, charge):
    assert api.post("/v1/refunds", {"charge": charge.id, "amount": 10**9}).status_code == 400
    assert not AuditRecord.objects.filter(action__startswith="refund").exists()


def test_the_customers_claim_is_recorded_with_their_ip(merchant, charge):
    refund = refund_create(merchant=merchant, livemode=False, charge=charge, amount=250)
    client = Client()
    response = client.post(f"/claim/{refund.claim_token}", {"address": CHECKSUMMED, "address_confirm": CHECKSUMMED,
                                                            "confirm": "on"}, REMOTE_ADDR="127.0.0.9")
    assert response.status_code == 302

    claim, = records("refund.claim")
    assert (claim.actor_type, claim.actor_id, claim.object_id, claim.ip) == ("system", "customer", refund.id,
                                                                             "127.0.0.9")
    assert claim.after == {"status": "pending", "destination_address": CHECKSUMMED.lower()}
    assert audit_chain_verify().ok


def test_staff_refund_of_an_unmatched_deposit_names_the_staff_user(admin_client, merchant):
    deposit = unmatched_deposit(merchant)
    staff = admin_client.session["_auth_user_id"]
    admin_client.post("/admin/payments/unmatcheddeposit/", {
        "action": "refund_deposits", "_selected_action": [deposit.pk], "apply": "1",
        "description": "paid after expiry, ticket 42", "destination_address": CUSTOMER})

    refund = Refund.objects.get(unmatched_deposit=deposit)
    create, = records("refund.create")
    action, = records("admin.action.refund_deposits")
    assert (create.actor_type, create.actor_id, create.object_id) == ("staff", str(staff), refund.id)
    assert create.seq < action.seq  # the service's record, then the action's, both after the action's locks
    assert audit_chain_verify().ok


def test_refunds_send_leaves_a_summary(db, capsys):
    call_command("refunds", "send")
    summary, = records("refunds.send")
    assert summary.actor_id == "command:refunds send" and summary.after == {}
