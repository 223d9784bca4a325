"""gunicorn for the web tier: `gunicorn -c gateway/gunicorn.conf.py gateway.wsgi`.

On the 2-core machine of docs/benchmarks.md granian serves the same WSGI application with about a third less CPU per
request (HTTP parsing and keep-alive in Rust; bench/create_intents.py uses it by default); this file is the gunicorn
alternative, sized from the same measurements. The request path is CPU-bound Python waiting on PostgreSQL for a few
short round-trips: two synchronous worker processes per core keep the cores busy; more made every figure worse
(context switches, more PostgreSQL backends), and threads (gthread) only add GIL contention. Every value can be
overridden from the environment, e.g. GUNICORN_WORKERS=8 on a 4-core machine.
"""
import os

_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

# Where to listen: a reverse proxy (TLS, buffering of slow clients) sits in front in production.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * _cores))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", 1))
# Connections the kernel holds while every worker is busy: enough for 1,000 concurrent clients with room to spare
# (the kernel caps it at net.core.somaxconn, 4096 by default).
backlog = int(os.environ.get("GUNICORN_BACKLOG", 4096))
# Keep-alive between the proxy and gunicorn (used by the threaded workers; sync workers close after each response).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
# Recycle a worker after this many requests (0: never), with jitter so that they never restart all at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 0))
# Load the application once in the master: workers fork with Django, DRF and bip-utils already imported.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"

# Errors to stderr; no access log unless asked for (the proxy logs requests; a line per request costs CPU here).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
proc_name = "gateway-web"

