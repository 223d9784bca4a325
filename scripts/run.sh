#!/usr/bin/env bash
# Runs the whole gateway in the foreground: the local chain, web, Celery worker and beat. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=gateway.settings.local
exec .venv/bin/python scripts/devserver.py "$@"
