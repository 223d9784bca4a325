from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

handler404 = "gateway.api.errors.api_not_found"
handler500 = "gateway.api.errors.api_server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include("payments.api_urls")),
    path("v1/", include("merchants.api_urls")),
    path("pay/", include("payments.urls")),
    path("portal/", include("merchants.urls")),
    path("portal/", include("payments.portal.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
