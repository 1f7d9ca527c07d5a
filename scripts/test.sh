#!/usr/bin/env bash
# Runs every test of vigil: unit, integration (oracle, golden files, CLI) and the tests
# against real services (a real Apache Kafka broker started by scripts/kafka.sh).
# Idempotent; safe to run again. Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain: $(cargo --version)"
echo "== build (release: tests and benchmarks share one build)"
cargo build --release --all-targets

echo "== services: MLflow tracking server (scripts/mlflow.sh; tests/mlflow.rs needs it)"
scripts/mlflow.sh start
export VIGIL_REQUIRE_MLFLOW=1

echo "== tests"
cargo test --release "$@"
