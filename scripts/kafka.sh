#!/usr/bin/env bash
# scripts/kafka.sh — a real, local, single-node Apache Kafka broker for vigil's
# tests and for development.
#
# What it does
#   * Installs Kafka without any download from a project website: the jars are
#     Maven Central artifacts listed in scripts/kafka/pom.xml (kafka_2.13,
#     kafka-tools and the SLF4J->log4j2 binding), gathered with
#     `mvn dependency:copy-dependencies` into $VIGIL_CACHE/kafka/libs. That
#     step runs again only when the pom changes (a stamp holds its sha256), and
#     Maven's own ~/.m2 cache is reused between runs.
#   * Runs one KRaft node that is both broker and controller, listening on
#     127.0.0.1 only: clients on 127.0.0.1:$KAFKA_PORT, the controller on
#     127.0.0.1:$((KAFKA_PORT+1)). Its storage is formatted on the first start
#     (`kafka.tools.StorageTool format --standalone`) and kept afterwards, so
#     topics survive a stop/start.
#   * `start` returns only once the broker really answers a metadata request
#     (TopicCommand --list), or fails with the tail of its log.
#
# Usage: scripts/kafka.sh COMMAND [ARGS...]   (from any directory)
#   start                    install if needed, format storage on first use,
#                            start in the background and wait until it
#                            answers; does nothing (exit 0) if already up
#   stop                     stop the broker (SIGTERM, SIGKILL after 60 s);
#                            does nothing if it is not running
#   status                   exit 0 if running and answering, 1 if the process
#                            is alive but not answering, 3 if not running
#   topic NAME PARTITIONS    create a topic (replication factor 1) unless it
#                            already exists; an existing topic is left as is,
#                            even with another partition count
#   run-class CLASS ARGS...  run any Java class on the Kafka classpath, with
#                            stdin/stdout/exit code passed through, e.g.
#                              run-class org.apache.kafka.tools.ConsoleProducer \
#                                --bootstrap-server 127.0.0.1:19092 --topic t
#                              run-class org.apache.kafka.tools.consumer.ConsoleConsumer \
#                                --bootstrap-server 127.0.0.1:19092 --topic t \
#                                --from-beginning --max-messages 3
#   path                     print the cache directory ($VIGIL_CACHE/kafka)
#   reset                    stop the broker and delete its data (not the jars)
#
# Environment (defaults in brackets)
#   KAFKA_PORT           client port; the controller uses KAFKA_PORT+1 [19092]
#   VIGIL_CACHE          cache root [$HOME/.cache/vigil]
#   KAFKA_HEAP           broker heap options [-Xmx512m]
#   KAFKA_OPTS           extra JVM options for the broker []
#   KAFKA_TOOLS_OPTS     JVM options for run-class/topic and the storage tool
#                        [-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1]
#   KAFKA_START_TIMEOUT  seconds `start` waits for the broker to answer [90]
#   JAVA                 java executable (Java 17 or newer) [java]
#
# Layout under $VIGIL_CACHE/kafka
#   libs/                      the jars (+ .pom.sha256 stamp)
#   broker-$KAFKA_PORT/        one instance per port, so ports never collide:
#     server.properties        written by this script on every start
#     cluster.id               chosen on first start
#     data/                    log.dirs and KRaft metadata
#     logs/server.log          the broker's log (log4j2)
#     logs/kafka.out           the JVM's stdout/stderr
#     kafka.pid
#
# Messages go to stderr; stdout carries only `path` and the output of the Java
# tools, so tests can parse it.
set -euo pipefail

SCRIPT_DIR=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$SCRIPT_DIR/kafka/pom.xml
BROKER_LOG4J=$SCRIPT_DIR/kafka/log4j2.properties
TOOLS_LOG4J=$SCRIPT_DIR/kafka/tools-log4j2.properties

KAFKA_PORT=${KAFKA_PORT:-19092}
if ! [[ $KAFKA_PORT =~ ^[0-9]+$ ]] || ((KAFKA_PORT < 1 || KAFKA_PORT > 65534)); then
    echo "kafka.sh: KAFKA_PORT must be a port number below 65535, got '$KAFKA_PORT'" >&2
    exit 2
fi
CONTROLLER_PORT=$((KAFKA_PORT + 1))
VIGIL_CACHE=${VIGIL_CACHE:-${HOME:?HOME is not set}/.cache/vigil}
KAFKA_HEAP=${KAFKA_HEAP:--Xmx512m}
KAFKA_OPTS=${KAFKA_OPTS:-}
KAFKA_TOOLS_OPTS=${KAFKA_TOOLS_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
JAVA=${JAVA:-java}

BOOTSTRAP=127.0.0.1:$KAFKA_PORT
KCACHE=$VIGIL_CACHE/kafka # made absolute in prepare_dirs
TOOL=()
LIBS='' INST='' DATA='' LOGS='' CONF='' ADMIN_CONF='' PIDFILE='' SERVER_LOG=''

log() { echo "kafka.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# Create the cache directories and fix every path (absolute, whatever the cwd).
prepare_dirs() {
    mkdir -p "$KCACHE"
    KCACHE=$(cd -P "$KCACHE" && pwd)
    LIBS=$KCACHE/libs
    INST=$KCACHE/broker-$KAFKA_PORT
    DATA=$INST/data
    LOGS=$INST/logs
    CONF=$INST/server.properties
    ADMIN_CONF=$INST/admin.properties
    PIDFILE=$INST/kafka.pid
    SERVER_LOG=$LOGS/server.log
    mkdir -p "$DATA" "$LOGS"
    tool_cmd
}

# One lock for the whole cache: concurrent `start`s (or a `run-class` racing
# an install) wait for each other instead of half-copying jars or starting two
# brokers. fd 9 must be closed in every long-lived child (see start_broker).
lock() {
    exec 9>"$KCACHE/.lock"
    flock -w 900 9 || die "could not lock $KCACHE/.lock within 900 s"
}
unlock() { exec 9>&-; }

# Gather the jars with Maven unless the stamp says this pom was already done.
install_libs() {
    local want
    want=$(sha256sum "$POM" | cut -d' ' -f1)
    if [[ -f $LIBS/.pom.sha256 && $(<"$LIBS/.pom.sha256") == "$want" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: Maven is needed to install Kafka"
    log "installing Kafka jars into $LIBS (mvn dependency:copy-dependencies)..."
    rm -rf "$LIBS.tmp"
    # Maven's output goes to a file (stdout is for the tools' output), shown
    # only on failure.
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >"$KCACHE/mvn.log" 2>&1; then
        cat "$KCACHE/mvn.log" >&2
        die "mvn dependency:copy-dependencies failed (pom: $POM; output above and in $KCACHE/mvn.log)"
    fi
    echo "$want" >"$LIBS.tmp/.pom.sha256"
    rm -rf "$LIBS"
    mv "$LIBS.tmp" "$LIBS"
    log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars"
}

# The java command line for Kafka's command-line tools (a foreground JVM with a
# small heap and quick startup). The classpath wildcard must reach java
# unexpanded ("$LIBS/*" quoted): java itself expands it to every jar there.
# An array rather than a function so that `timeout` and `exec` can run it.
tool_cmd() {
    local -a opts
    read -ra opts <<<"$KAFKA_TOOLS_OPTS"
    TOOL=("$JAVA" "${opts[@]}" -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$TOOLS_LOG4J" -cp "$LIBS/*")
}

# PID of our broker if it is alive (the pid file alone could be stale, or its
# pid reused by another process), else fail.
broker_pid() {
    local pid
    [[ -f $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $CONF" || return 1
    echo "$pid"
}

# Is something accepting TCP connections on 127.0.0.1:$1? (bash's /dev/tcp)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Does the broker answer a real metadata request?
answers() {
    port_open "$KAFKA_PORT" || return 1
    timeout 40 "${TOOL[@]}" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONF" --list \
        >/dev/null 2>&1
}

show_log_tail() {
    local f
    for f in "$SERVER_LOG" "$LOGS/kafka.out"; do
        [[ -s $f ]] || continue
        echo "----- last 40 lines of $f (config dumps left out) -----" >&2
        # Kafka logs its whole config as tab-indented lines: skip those.
        grep -v $'^\t' "$f" | tail -n 40 >&2 || true
    done
    log "full broker log: $SERVER_LOG"
}

write_config() {
    cat >"$CONF" <<EOF
# Written by scripts/kafka.sh on every start; edits here are overwritten.
# Single KRaft node acting as broker and controller, on 127.0.0.1 only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA

# One node: every internal topic has a single replica, and few partitions so
# that the first consumer group / transaction / share group starts fast.
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
    # Client settings for our own TopicCommand calls: fail fast, never hang.
    cat >"$ADMIN_CONF" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# Format the storage once; later starts reuse it (and its topics).
format_storage() {
    [[ -f $DATA/meta.properties ]] && return 0
    local cid
    if [[ -s $INST/cluster.id ]]; then
        cid=$(<"$INST/cluster.id")
    else
        # A Kafka UUID: 16 random bytes, URL-safe base64 without padding. One
        # starting with '-' would read as an option, so draw again.
        cid=-
        while [[ $cid == -* ]]; do
            cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
        done
        echo "$cid" >"$INST/cluster.id"
    fi
    log "formatting storage in $DATA (cluster id $cid)"
    if ! "${TOOL[@]}" kafka.tools.StorageTool format --cluster-id "$cid" \
        --config "$CONF" --standalone >"$LOGS/format.log" 2>&1; then
        cat "$LOGS/format.log" >&2
        die "storage format failed (output above, also in $LOGS/format.log)"
    fi
}

start_broker() {
    local -a heap opts
    read -ra heap <<<"$KAFKA_HEAP"
    read -ra opts <<<"$KAFKA_OPTS"
    echo "===== $(date -u +%FT%TZ) kafka.sh start (port $KAFKA_PORT) =====" >>"$LOGS/kafka.out"
    # stdin/stdout/stderr detached so that a caller reading our output (a test
    # harness with pipes) is not kept waiting by the broker; fd 9 (the lock)
    # closed so the lock is released when this script exits.
    nohup "$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -XX:ErrorFile="$LOGS/hs_err_pid%p.log" \
        -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$BROKER_LOG4J" \
        "${opts[@]}" -cp "$LIBS/*" kafka.Kafka "$CONF" \
        </dev/null >>"$LOGS/kafka.out" 2>&1 9>&- &
    echo $! >"$PIDFILE"
}

# Wait until the broker answers; on failure print the log and stop it.
wait_until_answering() {
    local pid=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log_tail
            rm -f "$PIDFILE"
            die "the broker exited during startup (see the log above)"
        fi
        if answers; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            show_log_tail
            stop_broker
            die "the broker did not answer on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s"
        fi
        sleep 0.5
    done
}

stop_broker() {
    local pid i
    if ! pid=$(broker_pid); then
        rm -f "$PIDFILE"
        log "not running (port $KAFKA_PORT)"
        return 0
    fi
    log "stopping broker (pid $pid)..."
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do # 60 s
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still alive after 60 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PIDFILE"
    log "stopped"
}

cmd_start() {
    local pid t0=$SECONDS
    prepare_dirs
    # Work from the instance dir: neither mvn nor the broker should depend on
    # (or keep using) the caller's directory, which may be a temporary checkout.
    cd "$INST"
    lock
    if pid=$(broker_pid); then
        # Maybe still coming up (e.g. started by a `start` that was killed).
        wait_until_answering "$pid"
        log "already running (pid $pid) on $BOOTSTRAP; log: $SERVER_LOG"
        return 0
    fi
    rm -f "$PIDFILE"
    local p
    for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $p is already in use by a process this script did not start" \
                "(from $INST); stop it or choose another KAFKA_PORT"
        fi
    done
    install_libs
    write_config
    format_storage
    start_broker
    pid=$(<"$PIDFILE")
    log "starting broker (pid $pid) on $BOOTSTRAP; log: $SERVER_LOG"
    wait_until_answering "$pid"
    log "up on $BOOTSTRAP after $((SECONDS - t0)) s"
}

cmd_stop() {
    prepare_dirs
    lock
    stop_broker
}

cmd_status() {
    local pid
    prepare_dirs
    if ! pid=$(broker_pid); then
        log "not running (port $KAFKA_PORT; log: $SERVER_LOG)"
        return 3
    fi
    if answers; then
        log "running (pid $pid) and answering on $BOOTSTRAP; log: $SERVER_LOG"
        return 0
    fi
    log "process $pid is alive but does not answer on $BOOTSTRAP; log: $SERVER_LOG"
    return 1
}

cmd_topic() {
    (($# == 2)) || die "usage: kafka.sh topic NAME PARTITIONS"
    local name=$1 partitions=$2
    [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, got '$partitions'"
    prepare_dirs
    [[ -f $LIBS/.pom.sha256 && -f $ADMIN_CONF ]] || die "Kafka is not installed/started: run kafka.sh start"
    port_open "$KAFKA_PORT" || die "no broker on $BOOTSTRAP: run kafka.sh start"
    "${TOOL[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --command-config "$ADMIN_CONF" --create --if-not-exists \
        --topic "$name" --partitions "$partitions" --replication-factor 1
}

cmd_run_class() {
    (($# >= 1)) || die "usage: kafka.sh run-class CLASS [ARGS...]"
    prepare_dirs
    lock
    install_libs
    unlock
    exec "${TOOL[@]}" "$@"
}

cmd_reset() {
    prepare_dirs
    lock
    stop_broker
    rm -rf "$INST"
    log "deleted $INST"
}

usage() {
    sed -n '/^# Usage:/,/^# Layout/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
}

main() {
    local cmd=${1:-}
    if (($# > 0)); then shift; fi
    case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    topic) cmd_topic "$@" ;;
    run-class) cmd_run_class "$@" ;;
    path)
        prepare_dirs
        echo "$KCACHE"
        ;;
    reset) cmd_reset ;;
    -h | --help | help)
        usage
        ;;
    *)
        usage
        exit 2
        ;;
    esac
}

main "$@"
