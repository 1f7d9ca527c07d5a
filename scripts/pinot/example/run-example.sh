#!/usr/bin/env bash
# End-to-end check of the local Pinot (scripts/pinot.sh) fed by the local Kafka
# (scripts/kafka.sh), with the schema/table JSON files beside this script:
#   1. events: a plain REALTIME table, JSON rows, epoch-millis time column;
#      waits until SELECT COUNT(*) matches what was produced.
#   2. orders: an UPSERT table (primaryKeyColumns, upsertConfig FULL,
#      strictReplicaGroup routing), 2 partitions, messages keyed by the primary
#      key; checks that only the latest row per key (by the time column) is
#      returned, that an older row for a key is ignored, and that
#      OPTION(skipUpsert=true) still sees every row.
# Uses fresh topic/table names (suffix = a timestamp), deletes its tables and
# schemas at the end, and stops Kafka/Pinot again if it started them.
# Needs curl and jq. Environment: KAFKA_PORT, PINOT_*_PORT, VIGIL_CACHE as
# for the two scripts.
set -euo pipefail

HERE=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPTS=$(cd "$HERE/../.." && pwd)
KAFKA=$SCRIPTS/kafka.sh
PINOT=$SCRIPTS/pinot.sh
KAFKA_PORT=${KAFKA_PORT:-19092}
C=http://127.0.0.1:${PINOT_CONTROLLER_PORT:-19000}
B=http://127.0.0.1:${PINOT_BROKER_PORT:-18099}
RUN=$(date +%s)
EVENTS=events_$RUN
ORDERS=orders_$RUN

say() { echo "run-example: $*" >&2; }
fail() {
    say "FAILED: $*"
    exit 1
}

started_kafka=0 started_pinot=0
cleanup() {
    curl -sS -X DELETE "$C/tables/$EVENTS?type=realtime" >/dev/null 2>&1 || true
    curl -sS -X DELETE "$C/tables/$ORDERS?type=realtime" >/dev/null 2>&1 || true
    curl -sS -X DELETE "$C/schemas/$EVENTS" >/dev/null 2>&1 || true
    curl -sS -X DELETE "$C/schemas/$ORDERS" >/dev/null 2>&1 || true
    if ((started_pinot)); then "$PINOT" stop || true; fi
    if ((started_kafka)); then "$KAFKA" stop || true; fi
}
trap cleanup EXIT

if ! "$KAFKA" status >/dev/null 2>&1; then started_kafka=1; fi
"$KAFKA" start
if ! "$PINOT" status >/dev/null 2>&1; then started_pinot=1; fi
"$PINOT" start

"$KAFKA" topic "$EVENTS" 1 >&2
"$KAFKA" topic "$ORDERS" 2 >&2

# POST a JSON body (stdin) to the controller; fail unless it says "success".
post() {
    local path=$1 out
    out=$(curl -sS -X POST -H 'Content-Type: application/json' --data-binary @- "$C$path")
    echo "  POST $path -> $out" >&2
    [[ $out == *successfully* ]] || fail "POST $path"
}

# Schema name = table name; topic and broker list patched into the table.
rename_schema() { jq --arg n "$1" '.schemaName = $n' "$2"; }
rename_table() {
    jq --arg n "$1" --arg b "127.0.0.1:$KAFKA_PORT" \
        '.tableName = $n | .segmentsConfig.schemaName = $n
         | .tableIndexConfig.streamConfigs["stream.kafka.topic.name"] = $n
         | .tableIndexConfig.streamConfigs["stream.kafka.broker.list"] = $b' "$2"
}

rename_schema "$EVENTS" "$HERE/events_schema.json" | post /schemas
rename_table "$EVENTS" "$HERE/events_table.json" | post /tables
rename_schema "$ORDERS" "$HERE/orders_schema.json" | post /schemas
rename_table "$ORDERS" "$HERE/orders_table.json" | post /tables

produce() { # TOPIC [keyed]  (rows on stdin; keyed rows are KEY|JSON)
    local -a props=()
    if [[ ${2:-} == keyed ]]; then
        props=(--reader-property parse.key=true --reader-property 'key.separator=|')
    fi
    "$KAFKA" run-class org.apache.kafka.tools.ConsoleProducer \
        --bootstrap-server "127.0.0.1:$KAFKA_PORT" --topic "$1" "${props[@]}"
}

sql() { # prints the broker's JSON answer
    jq -cn --arg q "$1" '{sql: $q}' |
        curl -sS -X POST -H 'Content-Type: application/json' --data-binary @- "$B/query/sql"
}

# Wait until the jq expression $2 over the answer to $1 prints $3.
wait_for() {
    local q=$1 expr=$2 want=$3 got='' i
    for ((i = 0; i < 60; i++)); do
        got=$(sql "$q" | jq -c "$expr" 2>/dev/null || true)
        if [[ $got == "$want" ]]; then
            echo "  $q -> $got" >&2
            return 0
        fi
        sleep 1
    done
    fail "$q: wanted $want, last answer $got ($(sql "$q"))"
}

now=$(date +%s%3N)
say "plain realtime table $EVENTS"
for i in 1 2 3 4 5; do
    echo "{\"id\":\"e$i\",\"kind\":\"k$((i % 2))\",\"value\":$i,\"ts\":$((now + i))}"
done | produce "$EVENTS"
wait_for "SELECT COUNT(*) FROM $EVENTS" '.resultTable.rows' '[[5]]'
wait_for "SELECT kind, SUM(value) FROM $EVENTS GROUP BY kind ORDER BY kind" \
    '.resultTable.rows' '[["k0",6],["k1",9]]'

say "upsert table $ORDERS"
for k in o1 o2 o3; do
    for v in 1 2 3; do
        echo "$k|{\"order_id\":\"$k\",\"status\":\"s$v\",\"amount\":$v,\"ts\":$((now + v * 10))}"
    done
done | produce "$ORDERS" keyed
wait_for "SELECT order_id, status FROM $ORDERS ORDER BY order_id" \
    '.resultTable.rows' '[["o1","s3"],["o2","s3"],["o3","s3"]]'
# An older row (smaller ts) for o1 is ignored; a newer one for o2 wins.
{
    echo "o1|{\"order_id\":\"o1\",\"status\":\"stale\",\"amount\":0,\"ts\":$now}"
    echo "o2|{\"order_id\":\"o2\",\"status\":\"s4\",\"amount\":4,\"ts\":$((now + 100))}"
} | produce "$ORDERS" keyed
wait_for "SELECT COUNT(*) FROM $ORDERS OPTION(skipUpsert=true)" '.resultTable.rows' '[[11]]'
wait_for "SELECT order_id, status FROM $ORDERS ORDER BY order_id" \
    '.resultTable.rows' '[["o1","s3"],["o2","s4"],["o3","s3"]]'

"$PINOT" status >&2 || true
say "OK"
