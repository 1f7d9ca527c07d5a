#!/usr/bin/env bash
# A local MLflow tracking server for the tests: `scripts/mlflow.sh start|stop|status`.
# Idempotent. Installs the `mlflow` package from PyPI into a venv under
# $HOME/.cache/vigil/mlflow-venv (pip cache kept), serves on 127.0.0.1:15000 (loopback only)
# with a SQLite backend store and a local artifact root (--serve-artifacts), and waits until
# it answers. State (db, artifacts, pid, log) lives in $VIGIL_MLFLOW_HOME (default
# $HOME/.cache/vigil/mlflow-server).
set -euo pipefail

HOST=127.0.0.1
PORT="${VIGIL_MLFLOW_PORT:-15000}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vigil"
VENV="$CACHE/mlflow-venv"
STATE="${VIGIL_MLFLOW_HOME:-$CACHE/mlflow-server}"
PIDFILE="$STATE/mlflow.pid"
LOG="$STATE/mlflow.log"
VERSION="${VIGIL_MLFLOW_VERSION:-3.17.2}"
URL="http://$HOST:$PORT"

answers() {
  curl -fsS -m 2 "$URL/health" >/dev/null 2>&1 ||
    curl -fsS -m 2 "$URL/api/2.0/mlflow/experiments/search?max_results=1" >/dev/null 2>&1
}

running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

install() {
  if [[ -x "$VENV/bin/mlflow" ]]; then return; fi
  echo "== installing mlflow $VERSION into $VENV (pip cache: $CACHE/pip)"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/pip" install -q --upgrade pip
  PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/pip" install -q "mlflow==$VERSION" ||
    PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/pip" install -q mlflow
}

NAME=mlflow
# shellcheck source=lib/service.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

start() {
  if answers; then echo "mlflow: already answering at $URL"; return; fi
  install
  mkdir -p "$STATE/artifacts"
  if ! running_pid >/dev/null; then
    echo "== starting mlflow server at $URL (log: $LOG)"
    # setsid: its own process group, so `stop` ends the server and its gunicorn/uvicorn workers.
    setsid "$VENV/bin/mlflow" server \
      --host "$HOST" --port "$PORT" \
      --backend-store-uri "sqlite:///$STATE/mlflow.db" \
      --default-artifact-root "mlflow-artifacts:/" \
      --artifacts-destination "$STATE/artifacts" \
      --serve-artifacts --workers 1 \
      >"$LOG" 2>&1 < /dev/null &
    echo $! >"$PIDFILE"
  fi
  wait_answering
}

status() {
  if answers; then
    echo "mlflow: answering at $URL (pid $(running_pid || echo '?'))"
  else
    echo "mlflow: not answering at $URL"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
