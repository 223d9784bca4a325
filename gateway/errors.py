"""Typed domain refusals. Services raise them; the API's exception handler maps them to Stripe's error shape."""


class DomainError(Exception):
    """A refusal of the business rules, not a bug: e.g. cancelling a succeeded intent."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, *, code: str, message: str, param: str | None = None, status_code: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(DomainError):
    status_code = 404

    def __init__(self, *, message: str, param: str | None = None):
        super().__init__(code="resource_missing", message=message, param=param)


class ConfigurationError(DomainError):
    """The gateway is not set up for this (no wallet, no network): an operator must act."""

    status_code = 503
    error_type = "api_error"
