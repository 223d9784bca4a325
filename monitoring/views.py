"""`/healthz`, `/readyz` and `/metrics` (answered by monitoring.middleware.ProbeMiddleware, ahead of the rest of the
stack), and the staff operations page in the admin."""
from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway.metrics import instruments_registry
from gateway.ratelimit import client_address

from .collectors import BusinessCollector
from .probes import readiness, rpc_endpoints_health
from .selectors import operations_snapshot

_business = CollectorRegistry()
_business.register(BusinessCollector())
_NO_STORE = {"Cache-Control": "no-store"}


def healthz(request) -> HttpResponse:
    """The process is up and answers (no database, no Redis: a liveness probe restarts a process, never a
    dependency)."""
    return JsonResponse({"status": "ok"}, headers=_NO_STORE)


def readyz(request) -> HttpResponse:
    """200 when every check passes, else 503 (monitoring/probes.py); JSON either way."""
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503, headers=_NO_STORE)


def metrics_allowed(request) -> bool:
    """A scraper with the bearer token GATEWAY_METRICS_TOKEN (when set), or a client address in
    GATEWAY_METRICS_ALLOW_IPS (addresses or networks; 127.0.0.1 and ::1 by default). The address is read as the rate
    limits read it: past GATEWAY_NUM_PROXIES proxies in X-Forwarded-For, so a request relayed by the local TLS proxy
    is judged by its real client, not by the proxy's 127.0.0.1."""
    token = settings.GATEWAY_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    address = client_address(request)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(allowed, strict=False) for allowed in settings.GATEWAY_METRICS_ALLOW_IPS)


def metrics(request) -> HttpResponse:
    """The Prometheus text format: the instruments (every process of the machine in multiprocess mode) and the
    business gauges read from the database now."""
    if not metrics_allowed(request):
        return JsonResponse({"error": "forbidden"}, status=403, headers=_NO_STORE)
    body = generate_latest(instruments_registry()) + generate_latest(_business)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST, headers=_NO_STORE)


def operations_page(request) -> HttpResponse:
    """Admin > Operations: per network the head, cursor, lag, finality and its RPC endpoints' health (probed now,
    URLs masked); webhook backlog; queues; hot wallets against their floors; open discrepancies; approvals."""
    snapshot = operations_snapshot()
    context = {
        **admin.site.each_context(request),
        "title": "Operations",
        "snapshot": snapshot,
        "rpc": rpc_endpoints_health(),
        "readyz_max_lag_seconds": settings.GATEWAY_READYZ_MAX_SCANNER_LAG_SECONDS,
        "readyz_max_backlog": settings.GATEWAY_READYZ_MAX_WEBHOOK_BACKLOG,
    }
    return TemplateResponse(request, "admin/monitoring/operations.html", context)
