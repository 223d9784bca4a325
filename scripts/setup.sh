#!/usr/bin/env bash
# Idempotent set-up of a fresh machine of this kind: checks PostgreSQL and Redis, then installs the pinned Python
# and npm dependencies (skipped when nothing changed), the browser for the browser tests, and local secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

say() { printf '%s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if ! port_open 127.0.0.1 5432; then
  say "PostgreSQL is not reachable on 127.0.0.1:5432; start it with: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start"
  exit 1
fi
if ! port_open 127.0.0.1 6379; then
  say "Redis is not reachable on 127.0.0.1:6379; start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no"
  exit 1
fi

# Python: a venv with the pinned requirements; reinstalled only when a requirements file changes.
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($py --version)"
  "$py" -m venv .venv
fi
want=$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
  say "installing pinned Python packages"
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
  echo "$want" > .venv/.installed
fi

# npm: anvil and the Solidity compiler, exactly as package-lock.json pins them.
want=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat node_modules/.installed 2>/dev/null)" != "$want" ]; then
  say "installing pinned npm packages (anvil, solc)"
  # `npm ci` trips over the lock file's other-platform optional binaries of anvil (an npm bug); `npm install`
  # installs exactly the locked versions all the same (package.json pins them too).
  npm install --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" > node_modules/.installed
fi

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work offline).
if [ "$mode" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    say "the browser tests need Chromium: sudo apt-get install -y chromium"
    exit 1
  fi
fi
if [ "$mode" = "--bench" ] && ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    say "installing wrk for the benchmarks"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >/dev/null
  else
    say "the benchmarks need wrk: sudo apt-get install -y wrk"
    exit 1
  fi
fi

# Local secrets for the demo: a key-encryption key that never leaves this machine.
mkdir -p .local
if [ ! -s .local/kek ]; then
  .venv/bin/python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())" > .local/kek
  chmod 600 .local/kek
fi
if [ ! -s .local/secrets_kek ]; then
  .venv/bin/python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())" > .local/secrets_kek
  chmod 600 .local/secrets_kek
fi
