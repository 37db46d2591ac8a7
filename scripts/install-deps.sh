#!/usr/bin/env bash
# Installs what the build and the private cluster need on a Debian bookworm machine:
# the C toolchain bits for -sys crates and TimescaleDB (Apache edition) built from Debian's
# trixie source package against the local PostgreSQL 15. Idempotent: every step is skipped
# when its result is already present, so a second run takes about a second.
set -euo pipefail
PGV=${PGV:-15}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${WEARHOUSE_BUILD_DIR:-$ROOT/.wearhouse/build}
PG_CONFIG=/usr/lib/postgresql/$PGV/bin/pg_config
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

log() { printf '[install-deps] %s\n' "$*" >&2; }

need_pkgs=()
for p in build-essential cmake pkg-config libssl-dev "postgresql-server-dev-$PGV" "postgresql-$PGV" zlib1g-dev python3 python3-venv python3-pip jq curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ -f "/usr/lib/postgresql/$PGV/lib/timescaledb.so" ] && [ -f "/usr/share/postgresql/$PGV/extension/timescaledb.control" ]; then
  log "TimescaleDB already installed for PostgreSQL $PGV"
  exit 0
fi

# The mirror this machine already uses, so no new host is contacted.
MIRROR=$(grep -hoE '^(URIs:|deb) *[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -v security | head -1 | awk '{print $2}' || true)
MIRROR=${DEBIAN_MIRROR:-${MIRROR:-http://deb.debian.org/debian}}
log "building TimescaleDB from trixie's source package (mirror $MIRROR)"
rm -rf "$BUILD_DIR/tsdb"; mkdir -p "$BUILD_DIR/tsdb/lists/partial" "$BUILD_DIR/tsdb/cache/archives/partial"
W=$BUILD_DIR/tsdb
export GIT_CEILING_DIRECTORIES=$W  # keep the TimescaleDB build from reading our git repo
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" > "$W/sources.list"
APT=(-o Dir::Etc::SourceList="$W/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$W/lists" -o Dir::Cache="$W/cache")
apt-get "${APT[@]}" update -qq
(cd "$W" && apt-get "${APT[@]}" source -qq timescaledb >/dev/null 2>&1)
cd "$W"/timescaledb-*/
BUILD_DIR=build BUILD_FORCE_REMOVE=true ./bootstrap -DPG_CONFIG="$PG_CONFIG" \
  -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
  -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null 2>&1
make -s -C build -j"$(nproc)" >/dev/null 2>&1
$SUDO make -s -C build install >/dev/null
log "TimescaleDB installed: $(ls /usr/lib/postgresql/$PGV/lib/timescaledb-*.so | head -1)"
