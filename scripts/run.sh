#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the platform on its embedded default: a private
# PostgreSQL + TimescaleDB cluster under .wearhouse/ (no broker), with a demo developer, an API
# key and demo data printed. Ctrl-C stops the server; `scripts/stop.sh` stops the cluster.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
scripts/install-deps.sh
cargo build --release --locked
exec "$CARGO_TARGET_DIR/release/wearhouse" demo
