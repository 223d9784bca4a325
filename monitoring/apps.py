from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Health probes, Prometheus metrics and the staff operations page: the top layer, reading every app below."""

    name = "monitoring"
    verbose_name = "Monitoring"
