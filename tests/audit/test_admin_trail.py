"""Every admin change lands in the audit trail with who, before/after, why, IP and in the change's transaction;
the trail's own admin page is read-only."""
import pytest
from django.contrib.auth.models import Group

from audit.models import AuditRecord
from merchants.models import WebhookEndpoint


def _last(action):
    return AuditRecord.objects.filter(action=action).order_by("-seq").first()


def test_add_change_delete_are_recorded_with_before_and_after(admin_client, admin_user):
    assert admin_client.post("/admin/auth/group/add/", {"name": "night shift"}).status_code == 302
    group = Group.objects.get(name="night shift")
    added = _last("admin.add")
    assert (added.actor_type, added.actor_id, added.object_type, added.object_id) == (
        "staff", str(admin_user.pk), "auth.group", str(group.pk))
    assert added.after["name"] == "night shift" and added.ip == "127.0.0.1"

    assert admin_client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "day shift"}).status_code == 302
    changed = _last("admin.change")
    assert changed.before["name"] == "night shift" and changed.after["name"] == "day shift"
    assert changed.reason == "Changed Name."

    assert admin_client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}).status_code == 302
    deleted = _last("admin.delete")
    assert deleted.before["name"] == "day shift" and deleted.object_id == str(group.pk)
    assert [r.seq for r in AuditRecord.objects.order_by("seq")] == list(range(1, AuditRecord.objects.count() + 1))


def test_an_action_is_recorded_once_submitted(admin_client, merchant):
    endpoint = WebhookEndpoint.objects.create(merchant=merchant, livemode=False, url="https://shop.example/hook",
                                              enabled_events=["*"], secret="whsec_test")
    response = admin_client.post("/admin/merchants/webhookendpoint/", {
        "action": "disable_endpoints", "_selected_action": [endpoint.pk]})

    assert response.status_code == 302
    record = _last("admin.action.disable_endpoints")
    assert record.after == {"model": "merchants.webhookendpoint", "ids": [endpoint.pk]}


def test_a_failed_change_records_nothing(admin_client):
    before = AuditRecord.objects.count()
    response = admin_client.post("/admin/auth/group/add/", {"name": ""})
    assert response.status_code == 200  # the form again, with its error
    assert AuditRecord.objects.count() == before


def test_the_trail_page_lists_and_filters_read_only(admin_client):
    admin_client.post("/admin/auth/group/add/", {"name": "auditors"})
    record = _last("admin.add")

    listed = admin_client.get("/admin/audit/auditrecord/", {"action": "admin.add"})
    assert listed.status_code == 200 and b"auth.group" in listed.content
    assert admin_client.get(f"/admin/audit/auditrecord/{record.pk}/change/").status_code == 200
    assert admin_client.get("/admin/audit/auditrecord/add/").status_code == 403
    assert admin_client.post(f"/admin/audit/auditrecord/{record.pk}/change/", {"reason": "x"}).status_code == 403
    assert admin_client.post(f"/admin/audit/auditrecord/{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditRecord.objects.get(pk=record.pk).reason == record.reason
