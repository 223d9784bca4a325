import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.local")

app = Celery("gateway")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


def task_wake(name: str) -> None:
    """Send the task `name` to wake its workers now (after a commit). When the broker is down this only logs: every
    such task also runs on beat, and its work waits in database rows, so nothing is lost."""
    try:
        app.send_task(name)
    except Exception:
        logger.warning("could not send %s; its beat run picks the work up", name, exc_info=True)
