#!/usr/bin/env bash
# The production web server: granian serving gateway.wsgi, sized so that its PostgreSQL connections are bounded
# under any burst (docs/deploy.md). Run it from anywhere; it serves the repository it lives in:
#
#   DJANGO_SETTINGS_MODULE=gateway.settings.production SECRET_KEY=... DATABASE_URL=... scripts/serve.sh
#
# Environment (all optional):
#   GATEWAY_WEB_HOST     address to bind (127.0.0.1: a reverse proxy terminates TLS in front; 0.0.0.0 to expose it)
#   GATEWAY_WEB_PORT     port (8000)
#   GATEWAY_WEB_WORKERS  worker processes (one per core)
#   GATEWAY_WEB_THREADS  application threads per worker (1). Each thread holds at most one PostgreSQL connection
#                        (or, with DATABASE_POOL_MAX_SIZE, each worker a pool of that many), so the web tier holds
#                        at most WORKERS x THREADS connections. Without --blocking-threads granian grows its thread
#                        pool under load, each thread with a connection of its own: 94 idle connections after one
#                        burst of 1,000 clients, and "too many clients already" for every other process.
#   GATEWAY_WEB_BACKLOG  connections the kernel queues while every thread is busy (4096; capped by somaxconn)
# Extra arguments are passed to granian (e.g. --access-log).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
GRANIAN="${GRANIAN:-$ROOT/.venv/bin/granian}"
[ -x "$GRANIAN" ] || GRANIAN="$(command -v granian)"
cores="$(nproc)"
exec "$GRANIAN" --interface wsgi --working-dir "$ROOT" \
    --host "${GATEWAY_WEB_HOST:-127.0.0.1}" --port "${GATEWAY_WEB_PORT:-8000}" \
    --workers "${GATEWAY_WEB_WORKERS:-$cores}" --blocking-threads "${GATEWAY_WEB_THREADS:-1}" \
    --backlog "${GATEWAY_WEB_BACKLOG:-4096}" \
    --respawn-failed-workers --respawn-interval 1 \
    --workers-kill-timeout 30 \
    --http1-header-read-timeout 10000 \
    --no-ws --no-access-log --log-level "${GATEWAY_WEB_LOG_LEVEL:-warning}" \
    "$@" gateway.wsgi:application
