"""`manage.py staff_roles`: sync the groups to their exact permissions, give and take a role, each recorded."""
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditRecord
from gateway.roles import ROLES


def test_sync_restores_exact_permissions_and_assign_records(db):
    call_command("staff_roles", "sync")
    support = Group.objects.get(name="support")
    support.permissions.add(Permission.objects.get(codename="delete_merchant"))  # drifted by hand

    call_command("staff_roles", "sync")

    assert sorted(f"{p.content_type.app_label}.{p.codename}" for p in support.permissions.all()) \
        == sorted(ROLES["support"])
    user = get_user_model().objects.create_user(username="ops", is_staff=True)
    call_command("staff_roles", "assign", "--username", "ops", "--role", "finance")
    assert list(user.groups.values_list("name", flat=True)) == ["finance"]
    record = AuditRecord.objects.get(action="staff_roles.assign")
    assert record.before == {"roles": []} and record.after == {"roles": ["finance"]}
    assert record.actor_id == "command:staff_roles assign" and record.object_id == str(user.pk)

    call_command("staff_roles", "assign", "--username", "ops", "--role", "finance", "--remove")
    assert not user.groups.exists()


def test_assign_refuses_a_user_who_is_not_staff(db):
    get_user_model().objects.create_user(username="shop@example.com")
    with pytest.raises(CommandError, match="not staff"):
        call_command("staff_roles", "assign", "--username", "shop@example.com", "--role", "support")
    assert not AuditRecord.objects.filter(action="staff_roles.assign").exists()
