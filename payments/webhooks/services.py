"""Every write of webhook delivery: claiming due deliveries, recording attempts, resending, disabling endpoints."""
import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from gateway.errors import ConfigurationError, DomainError
from gateway.metrics import WEBHOOK_ATTEMPTS
from merchants import emails
from merchants.event_types import TEST_EVENT_TYPE
from merchants.fields import SealedText
from merchants.models import WebhookEndpoint
from merchants.presenters import webhook_endpoint_json

from .. import notifications
from ..events import event_record
from ..models import Event, WebhookDelivery

logger = logging.getLogger(__name__)

# Seconds to wait after the n-th failed attempt (n = 1, 2, ...): the last value repeats until 3 days have passed
# since the delivery was created. Each wait is jittered by +-20% (docs/webhooks.md).
RETRY_SCHEDULE_SECONDS = (60, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600)
RETRY_JITTER = 0.2
GIVE_UP_AFTER = timedelta(days=3)
ENDPOINT_DISABLED_REASON = "Deliveries failed for 3 days."


def retry_delay(attempts: int, *, rng: random.Random = random) -> timedelta:
    """The wait after `attempts` failed attempts (>= 1), with jitter."""
    base = RETRY_SCHEDULE_SECONDS[min(attempts, len(RETRY_SCHEDULE_SECONDS)) - 1]
    return timedelta(seconds=base * rng.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER))


def lease_seconds() -> float:
    """How long a claimed delivery stays hidden from other senders: the request timeout plus a margin. A sender
    killed mid-request loses nothing: its rows come back after the lease."""
    return settings.GATEWAY_WEBHOOK_TIMEOUT_SECONDS + settings.GATEWAY_WEBHOOK_LEASE_MARGIN_SECONDS


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    attempts: int
    created: datetime
    endpoint: WebhookEndpoint  # unsaved snapshot (never saved): id, url, livemode, secrets decrypted
    event: Event  # unsaved snapshot, enough for payments.presenters.event_json


# Due rows of disabled or deleted endpoints are failed apart from the claim, so that a dead endpoint's backlog never
# fills the claim's scan window (nor its per-endpoint cap): only the oldest DEAD_SCAN due rows are looked at per
# claim (dead rows newer than them hold nobody up), and only those of dead endpoints are locked and written. Two
# statements, each linear whatever the planner's statistics say (a semi-join of the due rows with themselves was
# quadratic on a fresh backlog: seconds per claim for a few thousand due rows).
DEAD_SCAN = 10_000

DEAD_DUE_SQL = """
WITH scan AS (
    SELECT id, endpoint_id FROM payments_webhookdelivery
    WHERE status = 'pending' AND next_attempt_at <= %(now)s ORDER BY next_attempt_at LIMIT %(dead_scan)s
)
SELECT scan.id FROM scan JOIN merchants_webhookendpoint e ON e.id = scan.endpoint_id
WHERE e.status <> 'enabled' OR e.deleted
"""

FAIL_DEAD_SQL = """
WITH dead AS (
    SELECT id FROM payments_webhookdelivery
    WHERE id = ANY(%(dead)s::bigint[]) AND status = 'pending' AND next_attempt_at <= %(now)s
    FOR UPDATE SKIP LOCKED
)
UPDATE payments_webhookdelivery d SET status = 'failed', next_attempt_at = NULL FROM dead WHERE d.id = dead.id
"""

CLAIM_SQL = """
WITH locked AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at, e.failing_since
    FROM payments_webhookdelivery d JOIN merchants_webhookendpoint e ON e.id = d.endpoint_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s AND NOT (d.endpoint_id = ANY(%(skip)s))
      AND (%(only)s::text[] IS NULL OR d.endpoint_id = ANY(%(only)s::text[]))
      AND e.status = 'enabled' AND NOT e.deleted
    ORDER BY d.next_attempt_at LIMIT %(scan)s FOR UPDATE OF d SKIP LOCKED
), ranked AS (
    SELECT id, next_attempt_at, failing_since,
           row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS rn
    FROM locked
), capped AS (
    SELECT id, next_attempt_at, failing_since IS NOT NULL AS failing,
           row_number() OVER (PARTITION BY failing_since IS NOT NULL ORDER BY next_attempt_at, id) AS lane_rn
    FROM ranked
    WHERE rn <= CASE WHEN failing_since IS NULL THEN %(per_endpoint)s ELSE %(per_failing)s END
), picked AS (
    SELECT id FROM capped
    WHERE NOT failing OR %(max_failing)s::integer IS NULL OR lane_rn <= %(max_failing)s::integer
    ORDER BY next_attempt_at, id LIMIT %(limit)s
), upd AS (
    UPDATE payments_webhookdelivery d SET next_attempt_at = %(lease_until)s
    FROM picked p WHERE d.id = p.id
    RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.created
)
SELECT upd.id, upd.attempts, upd.created,
       e.id, e.url, e.livemode, e.secret, e.previous_secret, e.previous_secret_expires_at, e.failing_since,
       ev.id, ev.type, ev.created, ev.data, ev.livemode, ev.request_id, ev.idempotency_key
FROM upd JOIN merchants_webhookendpoint e ON e.id = upd.endpoint_id JOIN payments_event ev ON ev.id = upd.event_id
"""


def deliveries_claim(*, now: datetime, limit: int, per_endpoint: int, per_failing_endpoint: int | None = None,
                     max_failing: int | None = None, skip_endpoints=(), only_endpoints=None,
                     lease_until: datetime | None = None) -> list[ClaimedDelivery]:
    """Take up to `limit` due deliveries (pending, `next_attempt_at` <= now) for this sender, at most `per_endpoint`
    of one endpoint (so one endpoint's backlog cannot take a whole batch) and none of `skip_endpoints` (those this
    sender already has enough of in flight), only of `only_endpoints` if given. An endpoint that is failing
    (`failing_since` set) gets at most `per_failing_endpoint` (default: a quarter), and all the failing endpoints
    together at most `max_failing` (if given: the room left in the sender's slow lane), so their backlog of doomed
    first attempts cannot crowd out healthy endpoints. SKIP LOCKED: concurrent senders take different rows. The rows'
    `next_attempt_at` moves to `lease_until`, in this short transaction. Rows of a disabled or deleted endpoint are
    never claimed: in the same transaction, those among the oldest due rows are marked failed (a resend brings them
    back), however many there are beyond the claim's own window. Inside a caller's transaction (the sender's step,
    after its fan-out), part of it: no savepoint round trips."""
    if lease_until is None:
        lease_until = now + timedelta(seconds=lease_seconds())
    if per_failing_endpoint is None:
        per_failing_endpoint = max(1, per_endpoint // 4)
    params = {"now": now, "skip": list(skip_endpoints), "scan": limit * 4, "per_endpoint": per_endpoint,
              "per_failing": per_failing_endpoint, "max_failing": max_failing,
              "only": list(only_endpoints) if only_endpoints is not None else None,
              "limit": limit, "lease_until": lease_until, "dead_scan": DEAD_SCAN}
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(DEAD_DUE_SQL, params)
        dead = [row[0] for row in cursor.fetchall()]
        if dead:
            cursor.execute(FAIL_DEAD_SQL, {"dead": dead, "now": now})
        cursor.execute(CLAIM_SQL, params)
        rows = cursor.fetchall()
    claimed = []
    for (did, attempts, created, eid, url, livemode, secret, previous_secret, previous_expires, failing_since,
         evid, evtype, evcreated, data, evlivemode, request_id, idempotency_key) in rows:
        endpoint = WebhookEndpoint(id=eid, url=url, livemode=livemode, secret=SealedText(secret),
                                   previous_secret=SealedText(previous_secret),
                                   previous_secret_expires_at=previous_expires, failing_since=failing_since)
        # Decrypted here, in synchronous code: the first time reads the data key from the database, which the
        # sender's event loop must not do; later claims of this secret version hit the process cache. A secret that
        # does not decrypt stays sealed: its POST fails as an attempt (retried), and the log says why.
        try:
            endpoint.secret, endpoint.previous_secret = endpoint.secret, endpoint.previous_secret
        except ConfigurationError:
            logger.exception("The signing secret of webhook endpoint %s does not decrypt", eid)
        event = Event(id=evid, type=evtype, created=evcreated, data=json.loads(data) if isinstance(data, str) else data, livemode=evlivemode,
                      request_id=request_id, idempotency_key=idempotency_key)
        claimed.append(ClaimedDelivery(id=did, attempts=attempts, created=created, endpoint=endpoint, event=event))
    return claimed


@dataclass(frozen=True)
class AttemptResult:
    delivery_id: int
    endpoint_id: str
    attempts_before: int  # as claimed
    delivery_created: datetime
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str
    response_body: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.error


RECORD_SQL = """
WITH r AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(started)s::timestamptz[], %(status)s::text[], %(next)s::timestamptz[])
        AS r(id, started_at, status, next_attempt_at)
), upd AS (
    UPDATE payments_webhookdelivery d
    SET status = r.status, attempts = d.attempts + 1, last_attempt_at = r.started_at,
        next_attempt_at = r.next_attempt_at,
        delivered_at = CASE WHEN r.status = 'succeeded' THEN %(now)s ELSE d.delivered_at END
    FROM r WHERE d.id = r.id AND d.status = 'pending'
    RETURNING 1
)
INSERT INTO payments_webhookattempt (delivery_id, started_at, duration_ms, status_code, error, response_body)
SELECT * FROM unnest(%(ids)s::bigint[], %(started)s::timestamptz[], %(durations)s::integer[],
                     %(codes)s::smallint[], %(errors)s::text[], %(bodies)s::text[])
"""


def delivery_attempts_record(*, results: list[AttemptResult], now: datetime, rng: random.Random = random) -> list[str]:
    """Record finished attempts, in one transaction: each delivery succeeded, or due again after its backoff, or
    failed once 3 days have passed since it was created; one WebhookAttempt row per attempt; the endpoints'
    `failing_since` (set on a failure with no success since, cleared by a success). An endpoint that has been
    failing for 3 days is disabled and its merchant is emailed (after commit). A delivery no longer pending (a
    second sender after a lease ran out) keeps its state; the attempt is still recorded. Returns the ids of the
    endpoints disabled."""
    if not results:
        return []
    statuses, next_at = [], []
    for r in results:
        if r.succeeded:
            statuses.append(WebhookDelivery.Status.SUCCEEDED.value)
            next_at.append(None)
        elif now >= r.delivery_created + GIVE_UP_AFTER:
            statuses.append(WebhookDelivery.Status.FAILED.value)
            next_at.append(None)
        else:
            statuses.append(WebhookDelivery.Status.PENDING.value)
            next_at.append(now + retry_delay(r.attempts_before + 1, rng=rng))
    ok_endpoints = sorted({r.endpoint_id for r in results if r.succeeded})
    failing_endpoints = sorted({r.endpoint_id for r in results if not r.succeeded} - set(ok_endpoints))
    params = {
        "now": now, "ids": [r.delivery_id for r in results], "started": [r.started_at for r in results],
        "status": statuses, "next": next_at, "durations": [r.duration_ms for r in results],
        "codes": [r.status_code for r in results], "errors": [r.error[:500] for r in results],
        "bodies": [r.response_body for r in results],
    }
    threshold = notifications.webhook_failing_threshold()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RECORD_SQL, params)
        if ok_endpoints:
            cursor.execute(
                "UPDATE merchants_webhookendpoint SET failing_since = NULL, consecutive_failures = 0, updated = %s "
                "WHERE id = ANY(%s) AND failing_since IS NOT NULL", [now, ok_endpoints])
        disabled = []
        if failing_endpoints:
            cursor.execute(
                "UPDATE merchants_webhookendpoint SET failing_since = %s, updated = %s "
                "WHERE id = ANY(%s) AND failing_since IS NULL", [now, now, failing_endpoints])
            cursor.execute(
                "SELECT id FROM merchants_webhookendpoint WHERE id = ANY(%s) AND status = 'enabled' "
                "AND failing_since <= %s", [failing_endpoints, now - GIVE_UP_AFTER])
            disabled = [row[0] for row in cursor.fetchall()]
            # The run of failures of each failing endpoint; those whose run reaches the threshold now are emailed.
            failures = {e: sum(1 for r in results if r.endpoint_id == e) for e in failing_endpoints}
            cursor.execute(
                "UPDATE merchants_webhookendpoint e SET consecutive_failures = e.consecutive_failures + f.n "
                "FROM unnest(%s::varchar[], %s::int[]) AS f(id, n) WHERE e.id = f.id "
                "RETURNING e.id, e.consecutive_failures",
                [list(failures), list(failures.values())])
            reached = [e for e, total in cursor.fetchall() if total - failures[e] < threshold <= total]
            notifications.webhook_failing_enqueue([e for e in reached if e not in disabled])
        for endpoint_id in disabled:
            endpoint_disable(endpoint_id=endpoint_id, reason=ENDPOINT_DISABLED_REASON, notify=True)
    succeeded = sum(1 for r in results if r.succeeded)
    if succeeded:
        WEBHOOK_ATTEMPTS.labels("success").inc(succeeded)
    if len(results) > succeeded:
        WEBHOOK_ATTEMPTS.labels("failure").inc(len(results) - succeeded)
    return disabled


def endpoint_disable(*, endpoint_id: str, reason: str, notify: bool = False) -> WebhookEndpoint | None:
    """Disable an endpoint (no more deliveries until it is enabled again); with `notify`, email its merchant once
    the transaction commits. Returns None if it was already disabled."""
    with transaction.atomic():
        endpoint = (WebhookEndpoint.objects.select_for_update().select_related("merchant")
                    .filter(id=endpoint_id, status=WebhookEndpoint.Status.ENABLED).first())
        if endpoint is None:
            return None
        endpoint.status = WebhookEndpoint.Status.DISABLED
        endpoint.disabled_reason = reason
        endpoint.save(update_fields=["status", "disabled_reason", "updated"])
        if notify:
            transaction.on_commit(lambda: _disabled_email(endpoint))
    return endpoint


def _disabled_email(endpoint: WebhookEndpoint) -> None:
    """Always sent (whatever the notification settings), to the merchant's notification emails or owners."""
    try:
        emails.webhook_disabled_send(endpoint=endpoint)
    except Exception:  # the endpoint stays disabled; a mail server outage must not undo it
        logger.exception("could not email merchant %s about disabled endpoint %s", endpoint.merchant_id, endpoint.id)


def delivery_resend(*, endpoint: WebhookEndpoint, event: Event, now: datetime) -> WebhookDelivery:
    """Deliver `event` to `endpoint` again, now: its delivery is set pending and due (or created). Nothing else is
    written; the attempts that follow are recorded as usual."""
    with transaction.atomic():
        delivery, created = WebhookDelivery.objects.select_for_update().get_or_create(
            endpoint=endpoint, event=event, defaults={"next_attempt_at": now})
        if not created:
            delivery.status = WebhookDelivery.Status.PENDING
            delivery.next_attempt_at = now
            delivery.save(update_fields=["status", "next_attempt_at"])
    return delivery


def webhook_test_event_send(*, endpoint: WebhookEndpoint, now: datetime) -> WebhookDelivery:
    """A `webhook_endpoint.test` event (its object: the endpoint, without its secret) delivered to this endpoint
    only, due now, in one transaction. The event is born fanned out, so no other endpoint gets it; the sender signs
    and POSTs it as any other, and its attempts are recorded as usual. Refused for a disabled endpoint, which
    nothing is delivered to."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if endpoint.status != WebhookEndpoint.Status.ENABLED or endpoint.deleted:
            raise DomainError(code="webhook_endpoint_disabled", param="endpoint",
                              message="This endpoint is disabled: enable it to send it a test event.")
        event = event_record(merchant=endpoint.merchant, livemode=endpoint.livemode, type=TEST_EVENT_TYPE,
                             obj_id=endpoint.id, snapshot=webhook_endpoint_json(endpoint))
        Event.objects.filter(pk=event.pk).update(fanned_out_at=now)
        return WebhookDelivery.objects.create(endpoint=endpoint, event=event, next_attempt_at=now)


RESEND_SQL = """
WITH ev AS (
    SELECT ev.id FROM payments_event ev, merchants_webhookendpoint e
    WHERE e.id = %(endpoint)s AND ev.merchant_id = e.merchant_id AND ev.livemode = e.livemode
      AND ev.created >= %(since)s
      AND (e.enabled_events @> to_jsonb(ev.type::text) OR e.enabled_events @> '"*"'::jsonb)
), again AS (
    UPDATE payments_webhookdelivery d SET status = 'pending', next_attempt_at = %(now)s
    FROM ev WHERE d.endpoint_id = %(endpoint)s AND d.event_id = ev.id
    RETURNING d.event_id
), created AS (
    INSERT INTO payments_webhookdelivery (endpoint_id, event_id, status, attempts, next_attempt_at, created)
    SELECT %(endpoint)s, ev.id, 'pending', 0, %(now)s, %(now)s FROM ev
    WHERE NOT EXISTS (SELECT 1 FROM payments_webhookdelivery d WHERE d.endpoint_id = %(endpoint)s
                      AND d.event_id = ev.id)
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
    RETURNING event_id
)
SELECT (SELECT count(*) FROM again), (SELECT count(*) FROM created)
"""


def deliveries_resend_since(*, endpoint: WebhookEndpoint, since: datetime, now: datetime) -> tuple[int, int]:
    """Resend in bulk every event of the endpoint's merchant and mode since `since` that the endpoint wants:
    existing deliveries are set pending and due now, missing ones are created. Returns (reset, created)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RESEND_SQL, {"endpoint": endpoint.id, "since": since, "now": now})
        return tuple(cursor.fetchone())
