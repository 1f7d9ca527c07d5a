#!/usr/bin/env bash
# Apache Superset on vigil's Pinot tables: `scripts/superset.sh start|stop|status|import|chart-data|screenshot`.
# Idempotent. Installs apache-superset and the Pinot driver (pinotdb) from PyPI into a venv
# under $HOME/.cache/vigil/superset-venv (pip cache kept; versions pinned below, chosen to
# install on Python 3.11), keeps its state (SQLite metadata DB, config with a generated
# SECRET_KEY, pid, log) in $VIGIL_SUPERSET_HOME (default $HOME/.cache/vigil/superset),
# creates the admin user (admin / admin: a local tool on loopback) once, serves with
# gunicorn on 127.0.0.1:18088 (loopback only) and waits until /health answers.
#   import [--windows-table T] [--anomalies-table T] [--device D]
#       register the Pinot database (broker $PINOT_BROKER_PORT, controller
#       $PINOT_CONTROLLER_PORT, as scripts/pinot.sh) and import the dashboard of
#       scripts/superset/dashboard/ (export-format YAML) on those tables
#       (default vigil_windows, vigil_anomalies); an earlier import is replaced
#   chart-data   every chart's rows, run by Superset on Pinot (JSON on stdout)
#   screenshot PNG   the dashboard, logged in, through headless Chromium (scripts/browser.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=127.0.0.1
PORT="${VIGIL_SUPERSET_PORT:-18088}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vigil"
VENV="$CACHE/superset-venv"
STATE="${VIGIL_SUPERSET_HOME:-$CACHE/superset}"
PIDFILE="$STATE/superset.pid"
LOG="$STATE/superset.log"
VERSION="${VIGIL_SUPERSET_VERSION:-4.1.4}"
PINOTDB_VERSION=5.6.0
URL="http://$HOST:$PORT"
export SUPERSET_CONFIG_PATH="$STATE/superset_config.py" SUPERSET_URL="$URL" FLASK_APP=superset
export PINOT_BROKER_PORT="${PINOT_BROKER_PORT:-18099}" PINOT_CONTROLLER_PORT="${PINOT_CONTROLLER_PORT:-19000}"

answers() { curl -fsS -m 2 "$URL/health" >/dev/null 2>&1; }

running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

install() {
  local stamp="$VENV/.vigil-versions" want="superset=$VERSION pinotdb=$PINOTDB_VERSION"
  if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then return; fi
  echo "== installing apache-superset $VERSION and pinotdb $PINOTDB_VERSION into $VENV (pip cache: $CACHE/pip)"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/pip" install -q --upgrade pip
  PIP_CACHE_DIR="$CACHE/pip" "$VENV/bin/pip" install -q "apache-superset==$VERSION" "pinotdb==$PINOTDB_VERSION"
  echo "$want" >"$stamp"
}

setup() {
  mkdir -p "$STATE"
  if [[ ! -f "$SUPERSET_CONFIG_PATH" ]]; then
    cat >"$SUPERSET_CONFIG_PATH" <<CONF
# Written by scripts/superset.sh: a local Superset for vigil's Pinot tables.
SECRET_KEY = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
SQLALCHEMY_DATABASE_URI = "sqlite:///$STATE/superset.db"
# The REST API is used with a bearer token from /api/v1/security/login, on loopback.
WTF_CSRF_ENABLED = False
TALISMAN_ENABLED = False
CONF
  fi
  local stamp="$STATE/.initialized-$VERSION"
  if [[ ! -f "$stamp" ]]; then
    echo "== superset db upgrade, admin user, init"
    "$VENV/bin/superset" db upgrade >"$STATE/setup.log" 2>&1
    "$VENV/bin/superset" fab create-admin --username admin --firstname vigil --lastname admin \
      --email admin@localhost --password admin >>"$STATE/setup.log" 2>&1
    "$VENV/bin/superset" init >>"$STATE/setup.log" 2>&1
    touch "$stamp"
  fi
}

NAME=superset
# shellcheck source=scripts/lib/service.sh
. scripts/lib/service.sh

start() {
  if answers; then echo "superset: already answering at $URL"; return; fi
  install
  setup
  if ! running_pid >/dev/null; then
    echo "== starting superset at $URL (log: $LOG)"
    # setsid: its own process group, so `stop` ends gunicorn and its worker.
    setsid "$VENV/bin/gunicorn" -w 1 --threads 8 -b "$HOST:$PORT" --timeout 120 \
      "superset.app:create_app()" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  wait_answering
}

status() {
  if answers; then
    echo "superset: answering at $URL (pid $(running_pid || echo '?'))"
  else
    echo "superset: not answering at $URL"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  import) shift; "$VENV/bin/python" scripts/superset/vigil_superset.py import "$@" ;;
  chart-data) "$VENV/bin/python" scripts/superset/vigil_superset.py chart-data ;;
  screenshot)
    scripts/browser.sh setup >&2
    (cd tests/browser && node superset.mjs "$URL" "$(realpath -m "${2:?usage: $0 screenshot PNG}")") ;;
  *) echo "usage: $0 start|stop|status|import|chart-data|screenshot PNG" >&2; exit 2 ;;
esac
