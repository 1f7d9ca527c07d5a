#!/usr/bin/env bash
# scripts/crash-campaign.sh — crash and restart as a campaign, against real brokers.
#
#   scripts/crash-campaign.sh [SIGKILL_TRIALS] [BROKER_TRIALS] [SEED]     (defaults 10 3 1)
#
# Runs tests/crash_campaign.rs with more trials than the test suite does (2 and 2):
#   * SIGKILL trials: a Kafka-to-Kafka run (`--sink kafka`, 2 workers, 150,000 events on 3
#     partitions) is killed with SIGKILL at a random point (from start-up to past the end of
#     its input), then restarted bounded; its output topics, folded (latest row per key),
#     must equal an uninterrupted run's.
#   * broker trials: a second broker (scripts/kafka.sh on port 19192, reset at the end) is
#     stopped and started again in the middle of a run; every other trial with a 1 s delivery
#     time-out, so the run must stop with an error and is restarted. Folded outputs again
#     equal the uninterrupted run's.
# Prints one line per trial (where it was interrupted, what the restart replayed). Starts the
# main broker (scripts/kafka.sh start) if it is not running; leaves it running.
set -euo pipefail
cd "$(dirname "$0")/.."
sigkill=${1:-10}
broker=${2:-3}
seed=${3:-1}
scripts/kafka.sh start
cargo build --release --tests
VIGIL_REQUIRE_KAFKA=1 VIGIL_CRASH_TRIALS=$sigkill VIGIL_BROKER_TRIALS=$broker VIGIL_CRASH_SEED=$seed \
    cargo test --release --test crash_campaign -- --nocapture --test-threads 1 2>&1 |
    grep -E "trial|campaign|test result|panicked|FAILED"
