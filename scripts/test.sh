#!/usr/bin/env bash
# Runs every test of vigil: unit, integration (oracle, golden files, CLI) and the tests
# against real services (a real Apache Kafka broker started by scripts/kafka.sh).
# Idempotent; safe to run again. Usage: scripts/test.sh [extra cargo test args]
# The broker is started before the tests and stopped afterwards (unless it was already
# running: then it is left running). VIGIL_REQUIRE_KAFKA=1 makes the Kafka tests fail,
# not skip, when the broker does not answer.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain: $(cargo --version)"
echo "== style: cargo fmt --check, cargo clippy -D warnings (the house rules, enforced)"
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings

echo "== build (release: tests and benchmarks share one build)"
cargo build --release --all-targets

# --- services for tests/pinot_e2e.rs (issue 6): a real Kafka broker and a real Pinot.
# Starts whichever is not running, and at exit stops only what it started.
# VIGIL_REQUIRE_PINOT=1 makes the Pinot test fail (not skip) if they are unreachable.
started_services=()
stop_started_services() {
    local s
    for s in "${started_services[@]}"; do scripts/"$s".sh stop || true; done
}
trap stop_started_services EXIT
for s in kafka pinot mlflow; do
    if ! scripts/"$s".sh status >/dev/null 2>&1; then
        echo "== starting $s (scripts/$s.sh start)"
        t0=$SECONDS
        scripts/"$s".sh start
        started_services+=("$s")
        echo "== $s up in $((SECONDS - t0)) s"
    fi
done
export VIGIL_REQUIRE_PINOT=${VIGIL_REQUIRE_PINOT:-1}
export VIGIL_REQUIRE_MLFLOW=${VIGIL_REQUIRE_MLFLOW:-1}
# --- end of services

# The dashboard's browser test (tests/dashboard.rs): Chromium from Debian, playwright-core.
scripts/browser.sh setup
export VIGIL_REQUIRE_BROWSER=${VIGIL_REQUIRE_BROWSER:-1}
# Superset on Pinot (tests/superset_e2e.rs): the test installs (cached venv) and starts
# Superset itself through scripts/superset.sh; about 3 minutes on a fresh machine. Stopped at
# exit unless it was running before.
export VIGIL_SUPERSET=${VIGIL_SUPERSET:-1}
if ! scripts/superset.sh status >/dev/null 2>&1; then started_services+=("superset"); fi

echo "== tests"
VIGIL_REQUIRE_KAFKA=1 VIGIL_KAFKA_BROKERS=127.0.0.1:${KAFKA_PORT:-19092} cargo test --release --no-fail-fast "$@"
