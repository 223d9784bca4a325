from django.contrib.admin.apps import AdminConfig


class GatewayAdminConfig(AdminConfig):
    """django.contrib.admin with gateway.admin_site.GatewayAdminSite (TOTP required) as `admin.site`."""

    default_site = "gateway.admin_site.GatewayAdminSite"
