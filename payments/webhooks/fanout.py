"""Events to deliveries: each event not yet fanned out gets one delivery per endpoint that wants it."""
from datetime import datetime

from django.db import connection, transaction

FAN_OUT_SQL = """
WITH ev AS (
    SELECT id, merchant_id, livemode, type, created FROM payments_event
    WHERE fanned_out_at IS NULL ORDER BY created LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), ins AS (
    INSERT INTO payments_webhookdelivery (endpoint_id, event_id, status, attempts, next_attempt_at, created)
    SELECT e.id, ev.id, 'pending', 0, %(now)s, %(now)s
    FROM ev JOIN merchants_webhookendpoint e
      ON e.merchant_id = ev.merchant_id AND e.livemode = ev.livemode AND e.status = 'enabled' AND NOT e.deleted
     AND e.created <= ev.created
     AND (e.enabled_events @> to_jsonb(ev.type::text) OR e.enabled_events @> '"*"'::jsonb)
    ORDER BY ev.created, ev.id
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
    RETURNING 1
), done AS (
    UPDATE payments_event SET fanned_out_at = %(now)s FROM ev WHERE payments_event.id = ev.id RETURNING 1
)
SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM ins)
"""


def events_fan_out(*, now: datetime, limit: int = 1000) -> tuple[int, int]:
    """One batch, one transaction: claim up to `limit` events not fanned out (oldest first, SKIP LOCKED so
    concurrent runners share the work), create their deliveries (due at `now`) for the merchant's enabled endpoints
    of the same mode whose `enabled_events` match and that existed when the event happened, mark the events fanned
    out. Idempotent: the unique (endpoint, event) makes a second run insert nothing. Returns (events, deliveries).
    One transaction, or part of the caller's (the sender's step: its last batch with its claim), with no savepoint
    round trips."""
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(FAN_OUT_SQL, {"now": now, "limit": limit})
        events, deliveries = cursor.fetchone()
    return events, deliveries
