from rest_framework.views import APIView

from gateway.ids import id_is_valid

from .errors import ResourceMissing
from .input import printable
from .parsers import parse_query


class StripeApiView(APIView):
    """Base of every /v1 view: the caller (`request.auth`) scopes every query to its merchant and mode.

    `path_ids` names the object id each URL argument holds: {"intent_id": ("pi", "payment_intent")}. A value that
    is not such an id is a 404 `resource_missing` before any query (another URL argument named `*_id` must still
    have the shape of some id)."""

    api_resource: str | None = None
    path_ids: dict[str, tuple[str, str]] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        for name, value in kwargs.items():
            if name not in self.path_ids and not name.endswith("_id"):
                continue
            prefix, noun = self.path_ids.get(name, (None, "object"))
            if not id_is_valid(value, prefix):
                raise ResourceMissing(f"No such {noun}: '{printable(str(value))[:100]}'", param="id")

    def query_params(self, request) -> dict:
        return parse_query(request.META.get("QUERY_STRING", ""))

    @staticmethod
    def request_context_args(request) -> dict:
        return {
            "request_id": getattr(request, "request_id", ""),
            "idempotency_key": getattr(request, "idempotency_key", ""),
        }
