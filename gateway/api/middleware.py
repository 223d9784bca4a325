from gateway.ids import random_token


class RequestIdMiddleware:
    """Gives every request an id (`req_...`) and returns it in the `Request-Id` header, as Stripe does."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = "req_" + random_token(14)
        response = self.get_response(request)
        response["Request-Id"] = request.request_id
        return response
