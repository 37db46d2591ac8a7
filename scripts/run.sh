#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the platform on its embedded default: a private
# PostgreSQL + TimescaleDB cluster under .wearhouse/ (no broker), with a demo developer, an API
# key and demo data printed. Ctrl-C stops the server; `scripts/stop.sh` stops the cluster.
# WEARHOUSE_BUILD_PROFILE=debug builds faster (and runs slower) than the default release build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=${WEARHOUSE_BUILD_PROFILE:-release}
case "$PROFILE" in
  release) BUILD=(--release); OUT=release ;;
  debug) BUILD=(); OUT=debug ;;
  *) echo "error: WEARHOUSE_BUILD_PROFILE must be release or debug, not '$PROFILE'" >&2; exit 2 ;;
esac
scripts/install-deps.sh
cargo build "${BUILD[@]}" --locked --bin wearhouse
exec "$CARGO_TARGET_DIR/$OUT/wearhouse" demo
