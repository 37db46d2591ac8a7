#!/usr/bin/env bash
# Stops the private PostgreSQL cluster that scripts/run.sh started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$CARGO_TARGET_DIR/release/wearhouse
[ -x "$BIN" ] || BIN=$CARGO_TARGET_DIR/debug/wearhouse
"$BIN" db stop
