#!/usr/bin/env bash
# `make run`: migrate the embedded database, load the demo portfolio into an empty one, then
# start web + worker + beat as three real processes from the Procfile (honcho).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=gatekeeper.settings
$PY manage.py migrate --noinput
$PY manage.py seed_demo --if-empty
exec .venv/bin/honcho start -f Procfile
