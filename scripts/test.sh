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
echo "== build (release: tests and benchmarks share one build)"
cargo build --release --all-targets

echo "== Kafka broker (scripts/kafka.sh)"
kafka_was_running=0
if scripts/kafka.sh status >/dev/null 2>&1; then
    kafka_was_running=1
else
    scripts/kafka.sh start
fi
stop_kafka() {
    if [[ $kafka_was_running == 0 ]]; then
        scripts/kafka.sh stop || true
    fi
}
trap stop_kafka EXIT

echo "== tests"
VIGIL_REQUIRE_KAFKA=1 VIGIL_KAFKA_BROKERS=127.0.0.1:${KAFKA_PORT:-19092} cargo test --release "$@"
