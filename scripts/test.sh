#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs the whole suite:
# system packages + TimescaleDB, a private PostgreSQL cluster and a Kafka-protocol broker on
# 127.0.0.1 (both stopped afterwards),
# formatting and lint checks, then every test, then schemathesis against the live API
# (scripts/schemathesis.sh). Exits non-zero on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

scripts/install-deps.sh

echo "[test] cargo fmt --check"
cargo fmt --all -- --check
echo "[test] building"
cargo build --workspace --all-targets --locked
echo "[test] cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The tests' own cluster: its own directory and port, so a running demo is not disturbed.
export WEARHOUSE_HOME=$ROOT/.wearhouse/test
export WEARHOUSE_PG_PORT=${WEARHOUSE_TEST_PG_PORT:-55439}
BIN=$CARGO_TARGET_DIR/debug/wearhouse
# A real Kafka-protocol broker (tansu) on 127.0.0.1 for the relay and consumer-group tests.
export WEARHOUSE_KAFKA_PORT=${WEARHOUSE_TEST_KAFKA_PORT:-19439}
ST_PID=
cleanup() {
  if [ -n "$ST_PID" ]; then kill "$ST_PID" 2>/dev/null || true; wait "$ST_PID" 2>/dev/null || true; fi
  WEARHOUSE_LOG=warn "$BIN" db stop >/dev/null 2>&1 || true
  scripts/kafka.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
WEARHOUSE_LOG=warn "$BIN" db start >/dev/null
# TCP connections to the cluster need its generated password: use the URL it prints, on the
# `postgres` database (the tests create a database each).
WEARHOUSE_TEST_PG=$(WEARHOUSE_LOG=warn "$BIN" db url)
export WEARHOUSE_TEST_PG=${WEARHOUSE_TEST_PG%/*}/postgres
export WEARHOUSE_TEST_KAFKA=$(scripts/kafka.sh start)
# The Python environment the README recipes use (tests/recipes.rs runs them).
scripts/python-env.sh >/dev/null
unset DATABASE_URL WEARHOUSE_ADMIN_EMAIL WEARHOUSE_ADMIN_PASSWORD

# schemathesis (against a server of its own) runs beside the cargo tests: both spend much of
# their time waiting on the network and the database, so together they take little more than
# the longer of the two. Its output is shown once it ends.
cargo test --workspace --locked --no-run --quiet
echo "[test] schemathesis against /openapi.json (in the background)"
ST_LOG=$(mktemp "${TMPDIR:-/tmp}/wearhouse-st-log.XXXXXX")
scripts/schemathesis.sh >"$ST_LOG" 2>&1 &
ST_PID=$!
echo "[test] running the test suite"
tests=0
cargo test --workspace --locked --no-fail-fast -- --test-threads="${WEARHOUSE_TEST_THREADS:-4}" || tests=$?
schemathesis=0
wait "$ST_PID" || schemathesis=$?
echo "[test] schemathesis output:"
cat "$ST_LOG"
rm -f "$ST_LOG"
if [ "$tests" != 0 ] || [ "$schemathesis" != 0 ]; then
  echo "[test] FAILED (cargo test exit $tests, schemathesis exit $schemathesis)" >&2
  exit 1
fi
echo "[test] all tests passed"
