"""Stripe's error shape for every API failure: {"error": {"type", "code", "message", "param", "doc_url"}}."""
import logging

from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from gateway.errors import DomainError

logger = logging.getLogger(__name__)

DOC_URL = "https://docs.stripe.com/error-codes/"
# Validation error codes shown as they are (besides parameter_*, amount_*, metadata_*); others become parameter_invalid.
PASSED_CODES = frozenset({"url_invalid"})
RATE_LIMIT_MESSAGE = "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."


class StripeAPIError(exceptions.APIException):
    """Raise from views for a refusal that names its field: `InvalidRequest(message, param=...)`."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "parameter_invalid"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status_code=None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        if status_code is not None:
            self.status_code = status_code


class InvalidRequest(StripeAPIError):
    pass


class ResourceMissing(StripeAPIError):
    status_code = 404
    default_code = "resource_missing"


class IdempotencyError(StripeAPIError):
    error_type = "idempotency_error"
    default_code = "idempotency_key_reused"


class IdempotencyKeyInUse(StripeAPIError):
    status_code = 409
    default_code = "idempotency_key_in_use"


class ApiPermissionError(StripeAPIError):
    status_code = 403
    default_code = "insufficient_permissions"


def error_body(*, message, error_type="invalid_request_error", code=None, param=None):
    error = {"type": error_type, "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = DOC_URL + code
    if param:
        error["param"] = param
    return {"error": error}


def bracket_path(parts) -> str:
    parts = [str(p) for p in parts]
    return parts[0] + "".join(f"[{p}]" for p in parts[1:]) if parts else ""


def _first_validation_error(detail, path=()):
    """Walk DRF's nested error detail to the first leaf; return (param, message, code)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                return _first_validation_error(value, path)
            return _first_validation_error(value, path + (key,))
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)) and value:
                return _first_validation_error(value, path + (index,))
            if isinstance(value, (dict, list)):
                continue
            return _first_validation_error(value, path)
        return bracket_path(path), "Invalid value.", "parameter_invalid"
    code = getattr(detail, "code", None)
    param = bracket_path(path) or None
    stripe_code = {
        "required": "parameter_missing",
        "unknown": "parameter_unknown",
    }.get(code, code if code and (code.startswith(("parameter_", "amount_", "metadata_")) or code in PASSED_CODES)
          else "parameter_invalid")
    message = str(detail)
    if param and code == "required":
        message = f"Missing required param: {param}."
    elif param and code == "unknown":
        message = f"Received unknown parameter: {param}"
    elif param and not message.startswith("Invalid"):
        message = f"Invalid {param}: {message}"
    return param, message, stripe_code


def stripe_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(
            error_body(message=exc.message, error_type=exc.error_type, code=exc.code, param=exc.param),
            status=exc.status_code,
        )
    if isinstance(exc, StripeAPIError):
        return Response(
            error_body(message=exc.message, error_type=exc.error_type, code=exc.code, param=exc.param),
            status=exc.status_code,
        )
    if isinstance(exc, exceptions.ValidationError):
        param, message, code = _first_validation_error(exc.detail)
        return Response(error_body(message=message, code=code, param=param), status=400)
    if isinstance(exc, exceptions.ParseError):
        return Response(
            error_body(message=str(exc.detail), code="parameter_invalid", param=getattr(exc, "param", None)), status=400
        )
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return Response(error_body(message=str(exc.detail)), status=401)
    if isinstance(exc, exceptions.PermissionDenied):
        return Response(error_body(message=str(exc.detail), code="insufficient_permissions"), status=403)
    if isinstance(exc, (Http404, exceptions.NotFound)):
        return Response(error_body(message=str(exc) or "No such object.", code="resource_missing"), status=404)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response(error_body(message=str(exc.detail)), status=405)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return Response(error_body(message=str(exc.detail)), status=415)
    if isinstance(exc, exceptions.Throttled):
        # Stripe: 429, type invalid_request_error, code rate_limit; Retry-After says when the window ends.
        headers = {"Retry-After": str(int(exc.wait))} if exc.wait is not None else None
        return Response(error_body(message=RATE_LIMIT_MESSAGE, code="rate_limit"), status=429, headers=headers)
    if isinstance(exc, exceptions.APIException):
        return Response(error_body(message=str(exc.detail), error_type="api_error"), status=exc.status_code)
    if isinstance(exc, RecursionError):  # input nested beyond what the interpreter follows: the caller's to fix
        return Response(error_body(message="The request is nested too deeply.", code="parameter_invalid"), status=400)
    logger.exception("Unhandled API error", exc_info=exc)
    request = context.get("request")
    rid = getattr(request, "request_id", "")
    return Response(
        error_body(message=f"An unexpected error occurred on our side (request {rid}).", error_type="api_error"),
        status=500,
    )


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def api_not_found(request, exception=None):
    """404 for unknown URLs under /v1/ in Stripe's shape; the portal keeps Django's page."""
    if is_api_path(request.path):
        return JsonResponse(
            error_body(message=f"Unrecognized request URL ({request.method}: {request.path}).", code="resource_missing"),
            status=404,
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def api_server_error(request):
    if is_api_path(request.path):
        return JsonResponse(
            error_body(message="An unexpected error occurred on our side.", error_type="api_error"), status=500
        )
    from django.views.defaults import server_error

    return server_error(request)
