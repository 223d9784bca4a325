"""`Idempotency-Key` on POST: the first response is stored for 24 hours per (merchant, mode, key) and replayed.

The whole request runs in one transaction together with the stored response, so a crash can never leave a
created object without its record (a retry would make a second one) nor a record without its object. A concurrent
request with the same key finds the advisory lock taken and gets 409 at once instead of waiting.

A response that holds a secret (a webhook endpoint's signing secret, on create and roll_secret) names it with
`@idempotent(sealed=("secret",))`: the stored body keeps that field encrypted under GATEWAY_SECRETS_KEK
(merchants.secrets), bound to this record, and a replay decrypts it, so the replay is the first response exactly and
no secret is stored in clear."""
import functools
import hashlib
import json

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.response import Response

from gateway.api.errors import IdempotencyError, IdempotencyKeyInUse, InvalidRequest
from gateway.api.input import text_is_allowed
from gateway.db import insert_sql, mark_saved

from .models import IdempotencyRecord
from .secrets import secret_open, secret_seal

MAX_KEY_LENGTH = 255


def _fingerprint(request) -> str:
    body = json.dumps([request.method, request.path, request.data], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _lock_id(merchant_id: str, livemode: bool, key: str) -> int:
    digest = hashlib.sha256(f"idem:{merchant_id}:{int(livemode)}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# Every POST with a key reads and writes a record: both with plain SQL made from the model (gateway.db), not the
# ORM's query machinery, whose per-call cost shows on the API's hot path (docs/benchmarks.md).
def _record_get(*, merchant, livemode: bool, key: str) -> IdempotencyRecord | None:
    qn = connection.ops.quote_name
    fields = IdempotencyRecord._meta.concrete_fields
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(IdempotencyRecord._meta.db_table)} "
            f"WHERE {qn('merchant_id')} = %s AND {qn('livemode')} = %s AND {qn('key')} = %s",
            [merchant.pk, livemode, key],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = [
        f.from_db_value(value, None, connection) if hasattr(f, "from_db_value") else value
        for f, value in zip(fields, row)
    ]
    return IdempotencyRecord.from_db(connection.alias, [f.attname for f in fields], values)


def _record_add(record: IdempotencyRecord) -> None:
    sql, params = insert_sql(IdempotencyRecord, [record])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    mark_saved(record)


def _sealed_fields(body, scope: dict, sealed: tuple[str, ...], transform):
    """A copy of a dict body with each non-empty `sealed` top-level field passed through `transform` (secret_seal to
    store, secret_open to replay), bound to this record's merchant, mode, key and field."""
    if not sealed or not isinstance(body, dict):
        return body
    prefix = f"merchants_idempotencyrecord.response_body:{scope['merchant'].pk}:{int(scope['livemode'])}:{scope['key']}"
    return {name: transform(value, slot=f"{prefix}:{name}".encode()) if name in sealed and value else value
            for name, value in body.items()}


def idempotent(view_method=None, *, sealed: tuple[str, ...] = ()):
    """`@idempotent`, or `@idempotent(sealed=(field, ...))` when the response carries secrets in those fields."""
    if view_method is None:
        return functools.partial(idempotent, sealed=tuple(sealed))

    @functools.wraps(view_method)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view_method(view, request, *args, **kwargs)
        if not key or len(key) > MAX_KEY_LENGTH or not text_is_allowed(key):
            raise InvalidRequest(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters long, without control characters.",
                param="Idempotency-Key",
            )
        caller = request.auth
        fingerprint = _fingerprint(request)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_id(caller.merchant.pk, caller.livemode, key)])
                if not cursor.fetchone()[0]:
                    raise IdempotencyKeyInUse(
                        "There is currently another in-progress request using this Idempotency Key (that probably "
                        "means you submitted twice, and the other request is still going through). "
                        "Please try again later."
                    )
            scope = dict(merchant=caller.merchant, livemode=caller.livemode, key=key)
            record = _record_get(**scope)
            if record and record.created < timezone.now() - settings.GATEWAY_IDEMPOTENCY_TTL:
                record.delete()
                record = None
            if record:
                if record.fingerprint != fingerprint:
                    raise IdempotencyError(
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request."
                    )
                response = Response(
                    _sealed_fields(record.response_body, scope, sealed, secret_open), status=record.response_status
                )
                response["Idempotent-Replayed"] = "true"
                return response
            request.idempotency_key = key
            response = view_method(view, request, *args, **kwargs)
            _record_add(IdempotencyRecord(
                **scope, fingerprint=fingerprint, response_status=response.status_code,
                response_body=_sealed_fields(response.data, scope, sealed, secret_seal),
            ))
            response["Idempotency-Key"] = key
            return response

    return wrapper


# --- The portal's forms that move money: one submission per form (a double click or a resubmitted page) ----------

PORTAL_FORM_PREFIX = "portal-form:"


def portal_form_claim(*, merchant, livemode: bool, token: str) -> tuple[IdempotencyRecord, bool]:
    """Claim a portal form's one-time token in the CALLER's transaction: (record, True) the first time, (the first
    submission's record, False) after. A second submission sent meanwhile waits on the unique key until the first
    commits (then sees its record) or rolls back (then claims it itself)."""
    from django.db import IntegrityError

    key = PORTAL_FORM_PREFIX + token
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(merchant=merchant, livemode=livemode, key=key, fingerprint="portal",
                                                    response_status=201, response_body={}), True
    except IntegrityError:
        return IdempotencyRecord.objects.get(merchant=merchant, livemode=livemode, key=key), False
