"""Structured logs (docs/operations.md#logs): one JSON object a line from every process, each line carrying the
process role and the context it was written in: the request id of the API / portal / checkout / admin request that
caused it (also in the Celery tasks that request sent, and in the webhook deliveries of the events it wrote), and
in workers the task id and name, and the event id where one is being handled.

The context lives in contextvars: set by `RequestIdMiddleware` for a request, by the Celery signals of
gateway/celery.py for a task (the request id travels in the task message's headers), by the webhook sender for one
delivery. `ContextFilter`, on the handler of settings.LOGGING, copies it onto every record; the formatter
(`GATEWAY_LOG_FORMAT`: `json`, or `plain` for a terminal) writes it."""
from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("gateway_request_id", default="")
task_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("gateway_task_id", default="")
task_name_var: contextvars.ContextVar[str] = contextvars.ContextVar("gateway_task_name", default="")
event_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("gateway_event_id", default="")

# What this process is: web (default), worker, beat, watcher, sender, or a management command's name. Set once at
# start (gateway/celery.py's signals, the long-running commands), or given by GATEWAY_PROCESS_ROLE.
_role = os.environ.get("GATEWAY_PROCESS_ROLE", "") or "web"

# The name of the Celery message header that carries the request id into a task.
REQUEST_ID_HEADER = "gateway_request_id"

CONTEXT_FIELDS = ("role", "request_id", "task_id", "task_name", "event_id")


def role_set(role: str) -> None:
    """Name this process in its log lines (GATEWAY_PROCESS_ROLE, when given, wins: an operator's name for it)."""
    global _role
    _role = os.environ.get("GATEWAY_PROCESS_ROLE", "") or role


def role() -> str:
    return _role


def current_request_id() -> str:
    """The id of the request this code runs for (in a worker: of the request that sent the task), or ""."""
    return request_id_var.get()


@contextmanager
def log_context(*, request_id: str | None = None, event_id: str | None = None) -> Iterator[None]:
    """Within the block, log lines (and the tasks sent, and the events written) carry these ids."""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if event_id is not None:
        tokens.append((event_id_var, event_id_var.set(event_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the role and the context ids onto every record (never drops one). On the handler, so that the records
    of every logger, Celery's and the libraries' included, get them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = _role
        record.request_id = request_id_var.get()
        record.task_id = task_id_var.get()
        record.task_name = task_name_var.get()
        record.event_id = event_id_var.get()
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object a line (python-json-logger): timestamp (ISO 8601, UTC), level, logger, message, the context
    fields, any `extra=` the caller gave, and the traceback as `exc_info`. Empty context fields are left out."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, "")
            if value:
                log_data[name] = value
            else:
                log_data.pop(name, None)

    def process_log_record(self, log_data):
        data = log_data.get("data")
        if isinstance(data, dict) and "traceback" in data and "exc_info" in log_data:  # Celery's, said twice
            log_data["data"] = {key: value for key, value in data.items() if key != "traceback"}
        # timestamp, level, logger, message first: what a reader scans for (JSON readers do not care).
        head = {key: log_data.pop(key) for key in ("timestamp", "level", "logger", "message") if key in log_data}
        return super().process_log_record({**head, **log_data})


JSON_FORMAT = "%(levelname)s %(name)s %(message)s %(role)s %(request_id)s %(task_id)s %(task_name)s %(event_id)s"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(role)s %(name)s %(request_id)s %(task_id)s %(message)s"


def formatter(kind: str) -> logging.Formatter:
    """The formatter of settings.GATEWAY_LOG_FORMAT, for handlers made outside settings.LOGGING (Celery's)."""
    if kind == "plain":
        return logging.Formatter(PLAIN_FORMAT)
    return JsonFormatter(JSON_FORMAT)


def handler_adopt(handler: logging.Handler, kind: str) -> None:
    """Give a handler someone else made (Celery's, on the root and task loggers) our format and context."""
    handler.setFormatter(formatter(kind))
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
