#!/usr/bin/env bash
# Stops the private PostgreSQL cluster that scripts/run.sh started (wherever its data lives:
# `wearhouse db status` says).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/${WEARHOUSE_BUILD_PROFILE:-release}/wearhouse
[ -x "$BIN" ] || BIN=$CARGO_TARGET_DIR/release/wearhouse
[ -x "$BIN" ] || BIN=$CARGO_TARGET_DIR/debug/wearhouse
if [ ! -x "$BIN" ]; then
  echo "error: no wearhouse binary under $CARGO_TARGET_DIR: nothing was started by scripts/run.sh" >&2
  exit 1
fi
"$BIN" db stop
