from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit trail: the lowest layer (below merchants), so that every app can record into it."""

    name = "audit"
    verbose_name = "Audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_logged_out

        from .signals import login_recorded, logout_recorded

        user_logged_in.connect(login_recorded, dispatch_uid="audit.login")
        user_logged_out.connect(logout_recorded, dispatch_uid="audit.logout")
