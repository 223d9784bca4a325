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
