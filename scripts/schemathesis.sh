#!/usr/bin/env bash
# Property-based API testing: schemathesis generates requests from our own /openapi.json and checks
# every answer against it (status documented, body and headers matching the schema, no 5xx,
# invalid input refused, valid input accepted, undeclared methods refused with 405, credentials
# enforced). It runs against a live `wearhouse serve` on a random port and a fresh database that
# holds an imported Apple Health export, with an API key and a developer token made through the
# API. Exits non-zero on any failure.
#
# Needs: the debug binary (built by scripts/test.sh), WEARHOUSE_TEST_PG (admin URL of the test
# cluster), python3 and psql. schemathesis is installed from PyPI, pinned, into
# .wearhouse/schemathesis-<version>/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${WEARHOUSE_BIN:-$CARGO_TARGET_DIR/debug/wearhouse}
ADMIN_PG=${WEARHOUSE_TEST_PG:?WEARHOUSE_TEST_PG must hold the admin URL of the test cluster}
VERSION=4.32.5
VENV=$ROOT/.wearhouse/schemathesis-$VERSION
# More examples find more; the default keeps the run within a few minutes on two cores.
MAX_EXAMPLES=${WEARHOUSE_SCHEMATHESIS_EXAMPLES:-25}

log() { echo "[schemathesis] $*" >&2; }

# CPython 3.11.7 crashes inside hypothesis (`SystemError: AST constructor recursion depth
# mismatch`) on some of our schemas; prefer a newer interpreter when there is one.
PYTHON=${WEARHOUSE_PYTHON:-}
if [ -z "$PYTHON" ]; then
  candidates="python3.12 python3.13"
  # pyenv's shims answer only for the selected version: ask for its newer interpreters directly.
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[23]\.[0-9]+$' | sort -V); do
      candidates="$candidates $(pyenv root)/versions/$v/bin/python3"
    done
  fi
  for candidate in $candidates python3; do
    if "$candidate" -c 'import venv' >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
if [ ! -x "$VENV/bin/st" ]; then
  log "installing schemathesis $VERSION into $VENV ($("$PYTHON" --version))"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/wearhouse-st.XXXXXX")
DB=st_$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
DB_URL=${ADMIN_PG%/*}/$DB
SERVER_PID=
SIM_PID=
cleanup() {
  for pid in $SERVER_PID $SIM_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  psql -q "$ADMIN_PG" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql -q "$ADMIN_PG" -c "CREATE DATABASE $DB" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The providers are the loopback simulator: routes that call a provider (webhook subscriptions,
# syncs) get real answers instead of failing to resolve the providers' hosts.
SIM_PORT=$(free_port)
SIM_URL=http://127.0.0.1:$SIM_PORT
SIM_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
"$BIN" simulate providers --port "$SIM_PORT" --client-secret "$SIM_SECRET" --wearhouse-url none \
  --log warn >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
# The simulator prints the server settings that point at it (`export WEARHOUSE_…=…`).
for _ in $(seq 600); do
  grep -q '^export WEARHOUSE_GARMIN_PUSH_TOKEN=' "$WORK/sim.log" 2>/dev/null && break
  kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/sim.log" >&2; exit 1; }
  sleep 0.1
done
eval "$(grep '^export WEARHOUSE_' "$WORK/sim.log")"

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
ADMIN_EMAIL=schemathesis@test.local
ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
log "server on $URL, database $DB (log: $WORK/serve.log)"
DATABASE_URL=$DB_URL WEARHOUSE_HOME=$WORK/home WEARHOUSE_BIND=127.0.0.1:$PORT \
  WEARHOUSE_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))') \
  WEARHOUSE_ADMIN_EMAIL=$ADMIN_EMAIL WEARHOUSE_ADMIN_PASSWORD=$ADMIN_PASSWORD \
  WEARHOUSE_SSE_HEARTBEAT_SECS=1 WEARHOUSE_SYNC_INTERVAL_SECS=0 WEARHOUSE_LOG=${WEARHOUSE_LOG:-warn} \
  "$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 600); do
  curl -fs "$URL/" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
  sleep 0.1
done
curl -fs "$URL/" >/dev/null

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
JWT=$(curl -fsS "$URL/api/v1/auth/login" --data-urlencode "username=$ADMIN_EMAIL" \
  --data-urlencode "password=$ADMIN_PASSWORD" | json '["access_token"]')
LOGOUT_JWT=$(curl -fsS "$URL/api/v1/auth/login" --data-urlencode "username=$ADMIN_EMAIL" \
  --data-urlencode "password=$ADMIN_PASSWORD" | json '["access_token"]')
API_KEY=$(curl -fsS "$URL/api/v1/developer/api-keys" -H "Authorization: Bearer $JWT" \
  -H 'Content-Type: application/json' -d '{"name":"schemathesis"}' | json '["key"]')
new_user() {
  curl -fsS "$URL/api/v1/users" -H "X-Open-Wearables-API-Key: $API_KEY" \
    -H 'Content-Type: application/json' -d "{\"first_name\":\"$1\"}" | json '["id"]'
}
USER_ID=$(new_user Ada)
VICTIM_ID=$(new_user Victim)
SDK_JWT=$(curl -fsS -X POST "$URL/api/v1/users/$USER_ID/token" -H "Authorization: Bearer $JWT" \
  | json '["access_token"]')

log "importing a small generated Apple Health export"
WEARHOUSE_LOG=warn "$BIN" generate apple-health --size 2MB --output "$WORK/export.xml" >/dev/null
DATABASE_URL=$DB_URL WEARHOUSE_HOME=$WORK/home WEARHOUSE_LOG=warn \
  "$BIN" import apple-health --user "$USER_ID" "$WORK/export.xml" >/dev/null
# The server's projection workers apply the import; wait until the data is readable.
for _ in $(seq 600); do
  n=$(curl -fsS "$URL/api/v1/users/$USER_ID/events/workouts?start_date=2000-01-01&end_date=2100-01-01&limit=1" \
    -H "X-Open-Wearables-API-Key: $API_KEY" | json '["data"].__len__()')
  [ "$n" != 0 ] && break
  sleep 0.1
done
[ "$n" != 0 ] || { log "imported data never became readable"; exit 1; }

log "running schemathesis $VERSION (max $MAX_EXAMPLES examples per operation)"
export WH_ST_API_KEY=$API_KEY WH_ST_JWT=$JWT WH_ST_SDK_JWT=$SDK_JWT WH_ST_LOGOUT_JWT=$LOGOUT_JWT WH_ST_USER_ID=$USER_ID WH_ST_VICTIM_ID=$VICTIM_ID
status=0
# schemathesis keeps a cache in the working directory: keep it out of the repository.
cd "$WORK"
"$VENV/bin/st" --config-file "$ROOT/scripts/schemathesis.toml" run "$URL/openapi.json" \
  --url "$URL" --checks all --max-examples "$MAX_EXAMPLES" --seed "${WEARHOUSE_SCHEMATHESIS_SEED:-1}" \
  --report junit --report-dir "$ROOT/.wearhouse/schemathesis-report" "$@" || status=$?
if [ "$status" != 0 ]; then
  log "FAILED (report: .wearhouse/schemathesis-report, server log below)"
  tail -n 50 "$WORK/serve.log" >&2
fi
exit "$status"
