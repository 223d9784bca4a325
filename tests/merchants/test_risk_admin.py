"""Admin > Merchants: freezing asks for a reason first; unfreezing lifts it; both end up in the admin's history."""
import pytest
from django.contrib.admin.models import LogEntry

from tests.otp import login_verified
from tests.staff import staff_user

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/merchants/merchant/"


def test_freeze_asks_for_a_reason_then_freezes_and_unfreeze_lifts_it(admin_client, merchant):
    # When staff pick "Freeze" without a reason: the reason form, nothing changed
    response = admin_client.post(CHANGELIST, {"action": "freeze", "_selected_action": [merchant.pk]})
    assert response.status_code == 200 and b"name=\"reason\"" in response.content
    merchant.refresh_from_db()
    assert not merchant.is_frozen
    # with a reason: frozen, and recorded
    response = admin_client.post(CHANGELIST, {"action": "freeze", "_selected_action": [merchant.pk],
                                              "reason": "card testing pattern"})
    assert response.status_code == 302
    merchant.refresh_from_db()
    assert merchant.is_frozen and merchant.frozen_reason == "card testing pattern"
    assert LogEntry.objects.filter(object_id=merchant.pk, change_message__contains="card testing").exists()
    # and "Unfreeze" lifts it
    admin_client.post(CHANGELIST, {"action": "unfreeze", "_selected_action": [merchant.pk]})
    merchant.refresh_from_db()
    assert not merchant.is_frozen


@pytest.mark.parametrize("role", ["support", "finance"])
def test_freeze_is_refused_without_the_freeze_permission(client, merchant, role):
    # Given staff in a role without merchants.freeze_merchant (the security role has it)
    login_verified(client, staff_user(role))
    # When they post "Freeze" with a reason anyway
    client.post(CHANGELIST, {"action": "freeze", "_selected_action": [merchant.pk], "reason": "no right to"})
    # Then nothing changed
    merchant.refresh_from_db()
    assert not merchant.is_frozen and not LogEntry.objects.filter(object_id=merchant.pk).exists()
