"""Stripe's list envelope and cursor pagination: newest first, `limit`, `starting_after`, `ending_before`,
`created[gt|gte|lt|lte]`. Keyset on (created, id), so pages never skip or repeat rows under concurrent inserts."""
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db.models import Q

from gateway.ids import id_is_valid

from .errors import InvalidRequest, ResourceMissing
from .input import ascii_int

CREATED_OPS = ("gt", "gte", "lt", "lte")


def parse_int(value, param: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidRequest(f"Invalid integer: {param} must be an integer.", param=param)
    number = ascii_int(str(value).strip())
    if number is None or abs(number) >= 10 ** 20:
        raise InvalidRequest(f"Invalid integer: {value!r}", param=param)
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        raise InvalidRequest(f"{param} must be between {minimum} and {maximum}.", param=param)
    return number


def _as_datetime(value, param: str) -> datetime:
    seconds = parse_int(value, param, minimum=0, maximum=32503680000)  # up to the year 3000
    return datetime.fromtimestamp(seconds, tz=dt_timezone.utc)


def created_filter(params: dict, field: str = "created") -> Q:
    """`created=<unix>` or `created[gte]=<unix>` ... as a Q on a DateTimeField (second granularity)."""
    value = params.get("created")
    if value is None:
        return Q()
    if isinstance(value, dict):
        q = Q()
        for op, raw in value.items():
            if op not in CREATED_OPS:
                raise InvalidRequest(f"Received unknown parameter: created[{op}]", param=f"created[{op}]",
                                     code="parameter_unknown")
            moment = _as_datetime(raw, f"created[{op}]")
            # Stored times have microseconds; compare against whole seconds as Stripe's integer timestamps do.
            if op == "gt":
                q &= Q(**{f"{field}__gte": _next_second(moment)})
            elif op == "gte":
                q &= Q(**{f"{field}__gte": moment})
            elif op == "lt":
                q &= Q(**{f"{field}__lt": moment})
            else:
                q &= Q(**{f"{field}__lt": _next_second(moment)})
        return q
    moment = _as_datetime(value, "created")
    return Q(**{f"{field}__gte": moment, f"{field}__lt": _next_second(moment)})


def _next_second(moment: datetime) -> datetime:
    return moment + timedelta(seconds=1)


def paginate(*, params: dict, queryset, serialize, url: str, lookup, id_prefix: str | None = None) -> dict:
    """`lookup(id)` finds a cursor object within the caller's scope, or None; a cursor that is not an id (of
    `id_prefix`'s objects when given) is refused before any query."""
    limit = parse_int(params.get("limit", 10), "limit", minimum=1, maximum=100)
    starting_after = params.get("starting_after")
    ending_before = params.get("ending_before")
    if starting_after and ending_before:
        raise InvalidRequest("You may only specify one of these parameters: starting_after, ending_before.",
                             param="ending_before")
    qs = queryset
    reverse = False
    for param, value in (("starting_after", starting_after), ("ending_before", ending_before)):
        if not value:
            continue
        if not id_is_valid(value, id_prefix):
            raise InvalidRequest(f"Invalid {param}: must be an object id"
                                 f"{f' starting with {id_prefix}_' if id_prefix else ''}.", param=param)
        cursor = lookup(value)
        if cursor is None:
            raise ResourceMissing(f"No such object: '{value}'", param=param)
        if param == "starting_after":
            qs = qs.filter(Q(created__lt=cursor.created) | Q(created=cursor.created, id__lt=cursor.id))
        else:
            qs = qs.filter(Q(created__gt=cursor.created) | Q(created=cursor.created, id__gt=cursor.id))
            reverse = True
    ordering = ("created", "id") if reverse else ("-created", "-id")
    rows = list(qs.order_by(*ordering)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    if reverse:
        rows.reverse()
    return {"object": "list", "url": url, "has_more": has_more, "data": [serialize(r) for r in rows]}
