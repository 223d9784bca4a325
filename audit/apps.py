from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit trail: the lowest layer (below merchants), so that every app can record into it."""

    name = "audit"
    verbose_name = "Audit"
    default_auto_field = "django.db.models.BigAutoField"
