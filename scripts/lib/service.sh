# Shared by the scripts that run a Python service in its own process group (mlflow.sh,
# superset.sh). The sourcing script defines NAME, URL, LOG, PIDFILE and the functions
# `answers` (the service answers at $URL) and `running_pid` (prints the live pid from
# $PIDFILE, fails when there is none).

# Waits up to 180 s for the service to answer; fails with its last log lines if it exits
# or never answers.
wait_answering() {
  for _ in $(seq 1 180); do
    if answers; then echo "$NAME: answering at $URL"; return; fi
    if ! running_pid >/dev/null; then
      echo "$NAME: server exited; last log lines:" >&2
      tail -n 30 "$LOG" >&2 || true
      exit 1
    fi
    sleep 1
  done
  echo "$NAME: no answer at $URL after 180 s; last log lines:" >&2
  tail -n 30 "$LOG" >&2 || true
  exit 1
}

# Stops the service's process group (TERM, then KILL after 15 s) and removes its pid file.
stop() {
  local pid
  if pid=$(running_pid); then
    echo "== stopping $NAME (process group $pid)"
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -9 -- "-$pid" 2>/dev/null || true
  else
    echo "$NAME: not running (no live pid in $PIDFILE)"
  fi
  rm -f "$PIDFILE"
}
