"""The customer's pages speak the customer's language; nothing else changes language.

Django's LocaleMiddleware, scoped to the hosted checkout (/pay/) and the refund claim page (/claim/): their language
comes from the browser's Accept-Language (or the `django_language` cookie), among settings.LANGUAGES. The API, the
portal and the admin stay in LANGUAGE_CODE (English), whatever the browser asks for."""
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

CUSTOMER_PATH_PREFIXES = ("/pay/", "/claim/")


class CheckoutLocaleMiddleware(LocaleMiddleware):
    def _customer_page(self, request) -> bool:
        return request.path_info.startswith(CUSTOMER_PATH_PREFIXES)

    def process_request(self, request):
        if self._customer_page(request):
            super().process_request(request)

    def process_response(self, request, response):
        if not self._customer_page(request):
            return response
        response = super().process_response(request, response)
        # The thread serves other requests next: back to the default language (Django's LocaleMiddleware leaves the
        # language active, which would turn the next API error on this thread German).
        translation.deactivate()
        return response
