from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpResponseBadRequest

from gateway import logs
from gateway.ids import random_token

from .errors import api_not_found, is_api_path
from .input import text_is_allowed


class RequestIdMiddleware:
    """Gives every request an id (`req_...`) and returns it in the `Request-Id` header, as Stripe does. For the
    request's duration the id is also the log context (gateway.logs): every log line, every Celery task sent, every
    event and audit record written while it runs carries it, Django's own "Not Found: ..." line (written after the
    middleware) included; the context is cleared when the response is closed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = "req_" + random_token(14)
        logs.request_id_var.set(request.request_id)
        logs.event_id_var.set("")
        response = self.get_response(request)
        response["Request-Id"] = request.request_id
        return response


@receiver(request_finished)
def _request_log_context_clear(**_):
    logs.request_id_var.set("")


class InputGuardMiddleware:
    """A belt over the field rules (gateway.api.input) for the pages that have none of their own (the admin, the
    portal): a path with a disallowed character (a NUL, a control character) names nothing, so 404; such a query
    string (the admin's search and filters) is a 400. /v1 and the checkout check their input themselves, with their
    own answers (gateway.api.parsers and StripeApiView name the parameter; the checkout shows its friendly 404)."""

    CHECKED_BY_THE_VIEWS = ("/v1/", "/pay/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if is_api_path(path) or path.startswith(self.CHECKED_BY_THE_VIEWS):
            return self.get_response(request)
        if not text_is_allowed(path):
            return api_not_found(request)
        if not all(text_is_allowed(value) for key, values in request.GET.lists() for value in [key, *values]):
            return HttpResponseBadRequest("The query string contains a disallowed character.",
                                          content_type="text/plain")
        return self.get_response(request)


class ApiNoStoreMiddleware:
    """`Cache-Control: no-store` on every /v1 answer: API responses carry customer data and secrets shown once (a
    webhook endpoint's signing secret), which no browser, proxy or CDN may keep."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path_info.startswith("/v1/"):
            response["Cache-Control"] = "no-store"
        return response
