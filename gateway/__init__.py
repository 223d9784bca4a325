import sys

# The interpreter's recursion limit before any library changed it: gateway.apps puts it back (py_ecc raises it to
# 100,000, which lets a deeply nested JSON body overflow the C stack and kill the worker).
INTERPRETER_RECURSION_LIMIT = sys.getrecursionlimit()

from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
