"""Answers `/healthz`, `/readyz` and `/metrics` first in the stack (first in MIDDLEWARE): a load balancer's or
Prometheus' request reaches them without the host check (probes come by the pod's IP), the https redirect (they come
over plain HTTP inside the network), sessions, CSRF, CSP or the request metrics, and costs the rest of the site one
dictionary lookup."""
from django.http import HttpResponseNotAllowed

from . import views

PROBES = {"/healthz": views.healthz, "/readyz": views.readyz, "/metrics": views.metrics}


class ProbeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = PROBES.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        return view(request)
