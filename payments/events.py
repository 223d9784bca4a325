"""Event rows: written by the services in the same transaction as the change they describe."""
from django.db.models import Max

from gateway.logs import current_request_id

from .models import Event


def next_sequence(object_id: str) -> int:
    """The caller holds the object's row lock, so no other writer can take the same number."""
    return (Event.objects.filter(object_id=object_id).aggregate(m=Max("sequence"))["m"] or 0) + 1


def build_event(*, merchant, livemode: bool, type: str, obj_id: str, snapshot: dict, sequence: int,
                previous_attributes: dict | None = None, request_id: str = "", idempotency_key: str = "") -> Event:
    data = {"object": snapshot}
    # Stripe's `request.id`: the request that caused the event. A caller that names none gets the one this code runs
    # for (gateway.logs: a portal or admin request, or in a worker the request that sent the task); "" when the
    # event is automatic (the chain watcher, beat).
    request_id = (request_id or current_request_id())[:40]
    if previous_attributes:
        data["previous_attributes"] = previous_attributes
    return Event(
        merchant=merchant, livemode=livemode, type=type, object_id=obj_id, sequence=sequence, data=data,
        request_id=request_id, idempotency_key=idempotency_key,
    )


def event_record(**kwargs) -> Event:
    if "sequence" not in kwargs:
        kwargs["sequence"] = next_sequence(kwargs["obj_id"])
    event = build_event(**kwargs)
    event.save(force_insert=True)
    return event
