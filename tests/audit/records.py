"""Helpers of the tests that check a change left its audit record."""
from audit.models import AuditRecord
from merchants.models import ApiKey


def records(action: str) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(action=action).order_by("seq"))


def by_the_key(merchant, object_type: str, object_id: str, *actions: str) -> list[AuditRecord]:
    """One record of each action, all naming the merchant's API key and the object."""
    key = ApiKey.objects.get(merchant=merchant)
    found = [record for action in actions for record in records(action)]
    assert [r.action for r in found] == list(actions)
    assert {(r.actor_type, r.actor_id, r.object_type, r.object_id) for r in found} == {
        ("api_key", key.id, object_type, object_id)}
    return found
