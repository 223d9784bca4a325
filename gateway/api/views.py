from rest_framework.views import APIView

from .parsers import parse_query


class StripeApiView(APIView):
    """Base of every /v1 view: the caller (`request.auth`) scopes every query to its merchant and mode."""

    api_resource: str | None = None

    def query_params(self, request) -> dict:
        return parse_query(request.META.get("QUERY_STRING", ""))

    @staticmethod
    def request_context_args(request) -> dict:
        return {
            "request_id": getattr(request, "request_id", ""),
            "idempotency_key": getattr(request, "idempotency_key", ""),
        }
