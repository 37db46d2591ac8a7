#!/usr/bin/env bash
# The Python environment the README recipes use (confluent-kafka, pyarrow, pandas, pinned):
# a venv under .wearhouse/venv, created once. Prints the path of its python. Idempotent: a
# second run checks the pinned versions and returns at once.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${WEARHOUSE_VENV:-$ROOT/.wearhouse/venv}
# Keep in step with the install line in kafka/README.md.
PINS=(confluent-kafka==2.16.1 pyarrow==26.0.1 pandas==3.1.1)
log() { printf '[python-env] %s\n' "$*" >&2; }

want=$(printf '%s\n' "${PINS[@]}" | sort)
if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -m pip freeze 2>/dev/null | grep -iE '^(confluent-kafka|pyarrow|pandas)==' | tr 'A-Z' 'a-z' | sort)" = "$want" ]; then
  echo "$VENV/bin/python"
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  log "python3 with the venv module is needed (Debian: apt-get install python3-venv)"
  exit 1
fi
log "creating $VENV with ${PINS[*]}"
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" >&2
echo "$VENV/bin/python"
