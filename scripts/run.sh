#!/usr/bin/env bash
# `make run`: migrate the embedded database, load the demo portfolio into an empty one, then
# start web + worker + beat as three real processes from the Procfile (honcho).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=gatekeeper.settings
$PY manage.py migrate --noinput
case "${DJANGO_DEBUG:-0}" in
  1 | true | True | yes | on) $PY manage.py seed_demo --if-empty ;;
  *) echo "DJANGO_DEBUG is off: no demo data (its passwords are public)" ;;
esac
# honcho hands each process its own PORT (5000 unless told): give the web the one the README
# promises, and make links in emails point where it really listens.
export PORT="${PORT:-8000}"
export SITE_URL="${SITE_URL:-http://127.0.0.1:${PORT}}"
exec .venv/bin/honcho start -f Procfile -p "$PORT"
