from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from merchants.urls import urlpatterns as merchants_portal
from monitoring.views import operations_page
from payments.home_urls import urlpatterns as payments_home
from payments.portal.urls import urlpatterns as payments_portal
from settlements.urls import urlpatterns as settlements_portal

# The portal is one namespace (`portal:`) made of each app's pages: merchants cannot import payments.
portal_urlpatterns = [*payments_home, *payments_portal, *merchants_portal, *settlements_portal]

handler404 = "gateway.api.errors.api_not_found"
handler500 = "gateway.api.errors.api_server_error"

urlpatterns = [
    # Staff only, behind the admin's login and second factor (admin_view), before the admin's own catch-all.
    path("admin/operations/", admin.site.admin_view(operations_page), name="admin-operations"),
    path("admin/", admin.site.urls),
    path("v1/", include("payments.api_urls")),
    path("v1/", include("merchants.api_urls")),
    path("v1/", include("settlements.refunds.api_urls")),
    path("v1/", include("settlements.api_urls")),
    path("pay/", include("payments.urls")),
    path("portal/", include((portal_urlpatterns, "portal"))),
    path("claim/", include("settlements.refunds.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
