#!/usr/bin/env bash
# Kafka throughput: events/s from an input topic to the output topics, broker on this
# machine (scripts/kafka.sh). Generates N events, produces them into a fresh topic (not
# timed), then times `vigil run --input kafka://TOPIC --bounded --sink kafka`.
# Usage: scripts/bench-kafka.sh [EVENTS] [DEVICES] [WORKERS] [PARTITIONS]
#   defaults: 2000000 events, 20000 devices, 2 workers, 4 partitions
# Environment: KAFKA_PORT [19092], VIGIL (binary) [target/release/vigil or $CARGO_TARGET_DIR],
#   VIGIL_BENCH_CONFIG (a vigil.toml for the run) [none], RATE events/device/min [6]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-2000000}
DEVICES=${2:-20000}
WORKERS=${3:-2}
PARTITIONS=${4:-4}
RATE=${RATE:-6}
BROKERS=127.0.0.1:${KAFKA_PORT:-19092}
VIGIL=${VIGIL:-${CARGO_TARGET_DIR:-target}/release/vigil}
[[ -x $VIGIL ]] || cargo build --release
scripts/kafka.sh start
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stamp=$(date +%s)
topic=vigil-bench-$stamp
prefix=vigil-bench-out-$stamp
echo "== generating $EVENTS events over $DEVICES devices (not timed)"
"$VIGIL" generate --events "$EVENTS" --devices "$DEVICES" --rate "$RATE" --out "$work/events.csv"
echo "== producing into $topic ($PARTITIONS partitions; not timed)"
"$VIGIL" produce --input "$work/events.csv" --topic "$topic" --partitions "$PARTITIONS" --brokers "$BROKERS"
config_args=()
[[ -n ${VIGIL_BENCH_CONFIG:-} ]] && config_args=(-c "$VIGIL_BENCH_CONFIG")
echo "== timed: vigil run --input kafka://$topic --bounded --sink kafka -w $WORKERS"
start=$(date +%s.%N)
VIGIL__KAFKA__WINDOWS_TOPIC=$prefix.windows VIGIL__KAFKA__FEATURES_TOPIC=$prefix.features \
VIGIL__KAFKA__DLQ_TOPIC=$prefix.dlq VIGIL__KAFKA__ANOMALIES_TOPIC=$prefix.anomalies \
    "$VIGIL" run --input "kafka://$topic" --bounded --sink kafka --group "$prefix" -w "$WORKERS" \
    --brokers "$BROKERS" --out "$work/out" --progress never "${config_args[@]}"
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc -l)
printf '== %d events in %.2f s wall clock (process start to exit): %.0f events/s\n' \
    "$EVENTS" "$secs" "$(echo "$EVENTS / $secs" | bc -l)"
