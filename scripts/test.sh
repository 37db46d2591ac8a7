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
cleanup() {
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

echo "[test] running the test suite"
cargo test --workspace --locked --no-fail-fast -- --test-threads="${WEARHOUSE_TEST_THREADS:-4}"
echo "[test] schemathesis against /openapi.json"
scripts/schemathesis.sh
echo "[test] all tests passed"
