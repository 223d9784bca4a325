import logging
import os
import sys

from celery import Celery, signals

from gateway import logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.local")

app = Celery("gateway")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


# --- logs (gateway/logs.py): the role of the process, our format on Celery's handlers, the request id carried from
# the process that sends a task (a web request, or a task that a request caused) into the task's log lines.

if os.path.basename(sys.argv[0]) == "celery" or sys.argv[0].endswith(os.path.join("celery", "__main__.py")):
    # `celery -A gateway worker|beat`: named from the start (the signals below come after the first lines)
    for _word in ("worker", "beat"):
        if _word in sys.argv[1:]:
            logs.role_set(_word)
            break


@signals.celeryd_init.connect
def _role_worker(**_):
    logs.role_set("worker")
    # Until Celery sets its handlers up (after_setup_logger below), what the worker says at start (its warnings
    # included: running as root) goes out as JSON lines too, not through logging's bare last-resort handler.
    root = logging.getLogger()
    if not root.handlers:
        from django.conf import settings

        handler = logging.StreamHandler()
        logs.handler_adopt(handler, getattr(settings, "GATEWAY_LOG_FORMAT", "json"))
        root.addHandler(handler)
    logging.captureWarnings(True)


@signals.beat_init.connect
def _role_beat(**_):
    logs.role_set("beat")


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _log_format(logger=None, **_):
    """Celery installs its own handlers (`-l LEVEL` sets the level): they write our JSON lines with our fields."""
    from django.conf import settings

    kind = getattr(settings, "GATEWAY_LOG_FORMAT", "json")
    for handler in (logger.handlers if logger is not None else []):
        logs.handler_adopt(handler, kind)


@signals.before_task_publish.connect
def _request_id_out(headers=None, **_):
    """The sender's request id goes with the message (a header: task arguments stay ids only)."""
    request_id = logs.current_request_id()
    if request_id and headers is not None:
        headers[logs.REQUEST_ID_HEADER] = request_id


_task_tokens: dict[str, list] = {}


@signals.task_prerun.connect
def _task_context_in(task_id=None, task=None, **_):
    """In the worker, the task's log lines carry its id, its name and the request id it came with (an eager task
    run inline keeps its caller's request id)."""
    request_id = getattr(task.request, logs.REQUEST_ID_HEADER, None) or \
        (getattr(task.request, "headers", None) or {}).get(logs.REQUEST_ID_HEADER) or logs.current_request_id()
    _task_tokens[task_id] = [
        (logs.request_id_var, logs.request_id_var.set(request_id)),
        (logs.task_id_var, logs.task_id_var.set(task_id or "")),
        (logs.task_name_var, logs.task_name_var.set(task.name)),
        (logs.event_id_var, logs.event_id_var.set("")),
    ]


@signals.task_postrun.connect
def _task_context_out(task_id=None, **_):
    for var, token in reversed(_task_tokens.pop(task_id, [])):
        try:
            var.reset(token)
        except ValueError:  # set in another context (cannot happen in Celery's pools; never fail a task for a log)
            var.set("")


def task_wake(name: str) -> None:
    """Send the task `name` to wake its workers now (after a commit). When the broker is down this only logs: every
    such task also runs on beat, and its work waits in database rows, so nothing is lost."""
    try:
        app.send_task(name)
    except Exception:
        logger.warning("could not send %s; its beat run picks the work up", name, exc_info=True)
