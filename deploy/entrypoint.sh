#!/usr/bin/env bash
# Grad-CAM Studio in production (the container's entrypoint; runs as is on a host too):
# checks the settings, waits for the study database, then serves the dashboard.
#   STUDIO_DB_URL                   postgresql+psycopg://user:password@host:5432/db (required)
#   STUDIO_ADMIN_SECRET             the admin pages' secret (required)
#   STREAMLIT_SERVER_COOKIE_SECRET  the same on every replica (required: sessions survive a switch)
#   PORT                            default 8501; STUDIO_DB_WAIT_S: how long to wait for the database (60)
#   STUDIO_PYTHON                   the interpreter (default: python)
# Health: GET /_stcore/health answers "ok" once the server is up.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for name in STUDIO_DB_URL STUDIO_ADMIN_SECRET STREAMLIT_SERVER_COOKIE_SECRET; do
  [ -n "${!name:-}" ] || missing+=("$name")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "entrypoint: set ${missing[*]} (README, section Deployment)" >&2
  exit 2
fi
PYTHON="${STUDIO_PYTHON:-python}"
"$PYTHON" - <<'PY'
import os, sys, time
from studies import StorageError, Store
deadline = time.monotonic() + float(os.environ.get("STUDIO_DB_WAIT_S", "60"))
while True:
    try:
        Store(os.environ["STUDIO_DB_URL"]).dispose()  # also creates or upgrades the schema
        break
    except StorageError as err:
        if time.monotonic() > deadline:
            print(f"entrypoint: {err}", file=sys.stderr)
            sys.exit(3)
        time.sleep(1)
PY
exec "$PYTHON" -m ui.launch --server.port "${PORT:-8501}" --server.address 0.0.0.0 \
  --server.headless true
