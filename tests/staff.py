"""Staff users in a role (gateway/roles.py), as the admin tests need them."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from gateway.roles import roles_sync


def staff_user(role: str, name: str | None = None):
    """A staff user in `role` ("none": no role). The groups are synced first: a transactional test elsewhere may
    have flushed the migration's rows."""
    roles_sync()
    user = get_user_model().objects.create_user(username=f"{name or role}@ops.example", is_staff=True)
    if role != "none":
        user.groups.add(Group.objects.get(name=role))
    return user
