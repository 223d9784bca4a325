"""`audit_record`: the one call every app makes to record who changed what and why, inside its own transaction."""
import hashlib
import json
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timezone as dt_timezone

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from gateway.logs import current_request_id
from gateway.ratelimit import client_address

from .actors import Actor, actor_of
from .models import GENESIS_HASH, AuditHead, AuditRecord

REDACTED = "[redacted]"
# Field and key names whose values are never stored: keys, secrets, password hashes, seeds (also nested in JSON).
SECRET_NAME = re.compile(
    r"secret|password|passwd|key_hash|wrapped|private|mnemonic|seed|encrypted|^key$|^raw$|bin_key|authorization",
    re.IGNORECASE,
)
HASHED_FIELDS = ("seq", "created", "actor_type", "actor_id", "actor_label", "action", "object_type", "object_id",
                 "before", "after", "reason", "ip", "request_id", "prev_hash")


class AuditError(RuntimeError):
    pass


def redact(value):
    """A JSON-able copy of `value` without secrets (by key name, at any depth)."""
    if isinstance(value, dict):
        return {str(k): (REDACTED if SECRET_NAME.search(str(k)) and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return REDACTED
    return value


def _jsonable(value):
    """What PostgreSQL's jsonb gives back: hashed and stored alike (Decimals, dates and UUIDs as strings)."""
    if value is None:
        return None
    return json.loads(json.dumps(redact(value), cls=DjangoJSONEncoder))


def model_snapshot(obj: models.Model, fields: list[str] | None = None) -> dict:
    """An object's concrete fields (foreign keys as their ids), secrets redacted."""
    data = {}
    for field in obj._meta.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        data[field.attname] = field.value_from_object(obj) if not field.is_relation else getattr(obj, field.attname)
    return _jsonable(data)


def canonical_json(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)


def record_hash(record: AuditRecord) -> str:
    """SHA-256 of the canonical JSON of the record's fields, the previous record's hash among them."""
    data = {name: getattr(record, name) for name in HASHED_FIELDS}
    data["created"] = record.created.astimezone(dt_timezone.utc).isoformat()
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def _client_ip(request) -> str:
    """As the rate limits and the login lockout read it: past our proxies in X-Forwarded-For (GATEWAY_NUM_PROXIES)."""
    return (client_address(request) or "")[:45] if request is not None else ""


def _request_actor(request):
    auth = getattr(request, "auth", None)  # DRF: the API caller (its key)
    if auth is not None and hasattr(auth, "key_id"):
        return auth
    return getattr(request, "user", None)


@dataclass(frozen=True)
class ObjectRef:
    """An object named without a model instance (a network code, an endpoint id ...)."""
    type: str
    id: str


def _object_ref(obj) -> tuple[str, str]:
    if obj is None:
        return "", ""
    if isinstance(obj, ObjectRef):
        return obj.type, str(obj.id)
    return obj._meta.label_lower, str(obj.pk)


_FIELDS = [f for f in AuditRecord._meta.concrete_fields]
_INSERT = (
    f"WITH inserted AS (INSERT INTO {AuditRecord._meta.db_table} ({', '.join(f.column for f in _FIELDS)}) "
    f"VALUES ({', '.join(['%s'] * len(_FIELDS))})) "
    f"UPDATE {AuditHead._meta.db_table} SET hash = %s WHERE id = 1"
)


def _head_advance() -> tuple[int, str]:
    """Lock the head and take the next sequence number: (seq, previous hash), one round trip. The lock is held until
    the caller's transaction ends (that is what keeps the sequence gapless and the chain in commit order)."""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditHead._meta.db_table} SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        row = cursor.fetchone()
        if row is None:  # a fresh database (the migration seeds it; a test flush truncates it)
            AuditHead.objects.bulk_create([AuditHead(pk=1, seq=0, hash=GENESIS_HASH)], ignore_conflicts=True)
            cursor.execute(f"UPDATE {AuditHead._meta.db_table} SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            row = cursor.fetchone()
    return row[0], row[1]


def _record_insert(record: AuditRecord) -> None:
    """The record and the head's new hash, one round trip."""
    values = [f.get_db_prep_save(f.pre_save(record, add=True), connection) for f in _FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [*values, record.hash])
    record._state.adding, record._state.db = False, connection.alias


_BATCH: ContextVar[list | None] = ContextVar("audit_batch", default=None)


@contextmanager
def audit_batch():
    """Inside a transaction that changes several objects one after the other (an admin action over a selection, a
    run over the merchants' schedules), each change's `audit_record` waits here and all are appended, in order, when
    the block ends without an error: the head is then taken after the last row lock of the loop, never before one
    (a loop that took it on its first item and then waited for a row held by a transaction waiting for the head
    would deadlock). Use it around a loop of service calls, each its own savepoint, in one transaction: the records
    of a savepoint that rolled back (an item that failed and was skipped) are dropped with it, as its changes were."""
    if _BATCH.get() is not None:  # nested: the outer block appends
        yield
        return
    pending: list[tuple] = []
    token = _BATCH.set(pending)
    try:
        yield
    finally:
        _BATCH.reset(token)
    # Each waiting record registered a no-op on_commit marker; Django discards the callbacks of a savepoint it rolls
    # back, so a record whose marker is gone described changes that are gone too.
    alive = {id(entry[1]) for entry in transaction.get_connection().run_on_commit}
    for marker, kwargs in pending:
        if id(marker) in alive:
            audit_record(**kwargs)


def audit_record(*, actor=None, action: str, obj=None, before: dict | None = None, after: dict | None = None,
                 reason: str = "", request=None) -> AuditRecord | None:
    """Append one record to the chain, in the caller's transaction (refused outside one: a record must commit or
    roll back with the change it describes). `actor`: a user, an ApiKey / API caller, an `Actor`, "command:name";
    by default the request's API key or user, else the system. `obj`: a model instance or an `ObjectRef`.
    `before` / `after`: JSON (`model_snapshot`), secrets redacted here whatever the caller passes.

    Appends are serialised by the head row (FOR UPDATE) until the caller commits: call this last in the
    transaction, after the slow work, so the head is held for as little as possible (docs/operations.md); in a
    loop over several objects, inside `audit_batch`."""
    if not transaction.get_connection().in_atomic_block:
        raise AuditError("audit_record must run inside the transaction of the change it records")
    pending = _BATCH.get()
    if pending is not None:  # in an `audit_batch`: appended when it ends (None here)
        def marker():  # dropped by Django with the savepoint this record was made in, if that rolls back
            pass

        transaction.on_commit(marker)
        pending.append((marker, dict(actor=actor, action=action, obj=obj, before=_jsonable(before),
                                     after=_jsonable(after), reason=reason, request=request)))
        return None
    who: Actor = actor_of(actor if actor is not None else _request_actor(request))
    object_type, object_id = _object_ref(obj)
    seq, prev_hash = _head_advance()
    record = AuditRecord(
        seq=seq, created=timezone.now(), actor_type=who.type, actor_id=who.id[:100],
        actor_label=who.label[:200], action=action, object_type=object_type, object_id=object_id[:100],
        before=_jsonable(before), after=_jsonable(after), reason=reason or "", ip=_client_ip(request),
        request_id=(getattr(request, "request_id", "") or current_request_id())[:64], prev_hash=prev_hash,
    )
    record.hash = record_hash(record)
    _record_insert(record)
    return record
