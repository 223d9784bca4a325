"""The gateway's Prometheus instruments (prometheus-client), observed by the processes where things happen: the
RPC client (errors per endpoint), the payments side (time from a transfer's block to processing / succeeded, the
amounts that succeed), the webhook sender (attempt outcomes) and the web tier (requests by surface).

Counters and histograms only: they add up across processes. With PROMETHEUS_MULTIPROC_DIR set (the same empty
directory for every process of a machine: web workers, Celery workers, `watch`, `deliver_webhooks`),
prometheus-client writes them to memory-mapped files there and `/metrics` adds up every process's. The business
gauges (intents by status, scanner lag, backlogs, hot wallet balances, open discrepancies) are not instruments: the
`/metrics` view reads them from the database at scrape time (monitoring/collectors.py), so a dead worker can never
leave a stale gauge behind. docs/operations.md, "Health and metrics".

This module imports no app (the apps import it, pointing down)."""
from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import REGISTRY as PROCESS_REGISTRY

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from seconds (a block seen on a fast chain) to an hour (Ethereum's finality is ~13 minutes).
_TRANSITION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)
# Major units of the intent's currency (dollars): the seed's "transactions > $10,000" is the bucket above 10,000.
_AMOUNT_BUCKETS = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
# Seconds of a web request: the seed's "latency > 1,000 ms" is the share above the 1 s bucket.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RPC_CALLS = Counter(
    "gateway_rpc_calls", "JSON-RPC requests sent, per network and endpoint (URL masked: scheme://host:port).",
    ["network", "endpoint"],
)
RPC_ERRORS = Counter(
    "gateway_rpc_errors", "JSON-RPC requests that failed on the endpoint's side (transport, timeout, 429/5xx, "
    "malformed answer, internal or rate-limit errors), per network and endpoint.", ["network", "endpoint"],
)
PAYMENT_BLOCK_TO_STATUS = Histogram(
    "gateway_payment_block_to_status_seconds",
    "Seconds from the scanner recording a payment's first transfer (its block seen) to the intent reaching a "
    "status: processing (seen, not final) and succeeded (final).", ["network", "status"],
    buckets=_TRANSITION_BUCKETS,
)
PAYMENT_TRANSITIONS = Counter(
    "gateway_payment_intent_transitions", "Payment intents moved to a status by the funds on the chain or by "
    "expiry/cancel (processing, succeeded, canceled, reversed).", ["status"],
)
PAYMENT_SUCCEEDED_AMOUNT = Histogram(
    "gateway_payment_succeeded_amount", "Amounts of the payment intents that succeeded, in major units of their "
    "currency (a $12,000 payment is observed as 12000).", ["currency"], buckets=_AMOUNT_BUCKETS,
)
WEBHOOK_ATTEMPTS = Counter(
    "gateway_webhook_attempts", "Webhook POSTs finished, by outcome (success: a 2xx; failure: anything else).",
    ["outcome"],
)
DEPOSITS_HELD = Counter(
    "gateway_deposits_held", "Transfers to a deposit address from a blocked sender, held for review (payments "
    "HeldDeposit), by network.", ["network"],
)
ISSUER_BLACKLIST_ALERTS = Counter(
    "gateway_issuer_blacklist_alerts", "Issuer blacklist events (USDT AddedBlackList, USDC Blacklisted) naming one of "
    "the gateway's addresses, by network.", ["network"],
)
HTTP_REQUESTS = Counter(
    "gateway_http_requests", "Web requests answered, by surface (api, checkout, portal, admin, other) and status "
    "class (2xx, 3xx, 4xx, 5xx).", ["surface", "code"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "gateway_http_request_seconds", "Seconds to answer a web request (in the Django app), by surface.", ["surface"],
    buckets=_REQUEST_BUCKETS,
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_DIR_ENV))


def instruments_registry() -> CollectorRegistry:
    """The registry holding the instruments above as they stand for this machine: every process's values added up
    from PROMETHEUS_MULTIPROC_DIR in multiprocess mode, else this process's (with its process and platform
    collectors)."""
    if not multiprocess_mode():
        return PROCESS_REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


# --- Web requests ------------------------------------------------------------------------------------------------

_SURFACES = (("/v1/", "api"), ("/pay/", "checkout"), ("/portal/", "portal"), ("/admin/", "admin"))
_CODE_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def request_surface(path: str) -> str:
    for prefix, surface in _SURFACES:
        if path.startswith(prefix):
            return surface
    return "other"


class RequestMetricsMiddleware:
    """Counts every answered request and its time by surface: two label lookups and two observations, a few
    microseconds (docs/benchmarks.md measures the cost on the API's hot path). The probes and /metrics are answered
    before it (monitoring.middleware.ProbeMiddleware) and are not counted."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._counters: dict[tuple[str, str], object] = {}
        self._histograms: dict[str, object] = {}

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        surface = request_surface(request.path_info)
        code = _CODE_CLASSES.get(response.status_code // 100, "other")
        counter = self._counters.get((surface, code))
        if counter is None:
            counter = self._counters[(surface, code)] = HTTP_REQUESTS.labels(surface, code)
        histogram = self._histograms.get(surface)
        if histogram is None:
            histogram = self._histograms[surface] = HTTP_REQUEST_SECONDS.labels(surface)
        counter.inc()
        histogram.observe(time.perf_counter() - started)
        return response
