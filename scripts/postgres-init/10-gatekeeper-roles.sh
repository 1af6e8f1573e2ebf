#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data directory
# (/docker-entrypoint-initdb.d): creates gatekeeper_owner and gatekeeper_app (scripts/db_roles.sql).
set -euo pipefail
: "${GATEKEEPER_OWNER_PASSWORD:?set GATEKEEPER_OWNER_PASSWORD}"
: "${GATEKEEPER_APP_PASSWORD:?set GATEKEEPER_APP_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner=gatekeeper_owner -v app=gatekeeper_app \
  -v owner_password="$GATEKEEPER_OWNER_PASSWORD" -v app_password="$GATEKEEPER_APP_PASSWORD" \
  -v dbname="$POSTGRES_DB" \
  -f /gatekeeper/db_roles.sql
