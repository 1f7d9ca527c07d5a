#!/usr/bin/env bash
# scripts/pinot.sh — a real, local, single-node Apache Pinot (ZooKeeper,
# controller, broker, server) for vigil's tests and for development.
#
# What it does
#   * Installs Pinot without any download from a project website: the jars are
#     the Maven Central artifacts listed in scripts/pinot/pom.xml (Pinot 0.11.0:
#     pinot-tools and everything it depends on, minus the io.confluent jars and
#     pinot-orc, which Maven Central does not serve), gathered with
#     `mvn dependency:copy-dependencies` into $VIGIL_CACHE/pinot/lib. That step
#     runs again only when the pom changes (a stamp holds its sha256); Maven's
#     own ~/.m2 cache is reused between runs.
#   * Runs everything in ONE JVM: scripts/pinot/PinotLocal.java (compiled once
#     into $VIGIL_CACHE/pinot/launcher with the javac beside $JAVA, or else run
#     in Java's single-file source mode) starts the real ZooKeeper server, then Pinot's
#     own PinotAdministrator StartServiceManager with a controller, a broker and
#     a server, each configured by a file this script writes. Everything
#     registers as 127.0.0.1 and ZooKeeper listens on 127.0.0.1 only (Pinot's
#     own HTTP/netty listeners bind all interfaces; Pinot 0.11 has no setting
#     for that). Cluster name: PinotCluster. No minion.
#   * State (ZooKeeper data, segments) is kept between stop/start, so tables
#     survive a restart; `reset` deletes it.
#   * `start` returns only once ZooKeeper answers, the controller's /health is
#     OK, and the broker and the server are registered with the controller and
#     their /health is OK; otherwise it fails with the tail of the log.
#
# Usage: scripts/pinot.sh COMMAND   (from any directory)
#   start    install if needed, start in the background and wait until the
#            cluster is healthy; does nothing (exit 0) if already up
#   stop     stop the JVM (SIGTERM, SIGKILL after 60 s); does nothing if it
#            is not running
#   status   print the health of each component; exit 0 if all healthy, 1 if
#            the JVM is alive but something is not healthy, 3 if not running
#   path     print the cache directory ($VIGIL_CACHE/pinot)
#   reset    stop and delete this cluster's data (ZooKeeper, segments, logs;
#            not the jars)
#
# Endpoints (defaults):
#   controller REST  http://127.0.0.1:$PINOT_CONTROLLER_PORT  (/schemas, /tables, /health)
#   broker SQL       http://127.0.0.1:$PINOT_BROKER_PORT/query/sql  (POST {"sql": "..."})
#   ZooKeeper        127.0.0.1:$PINOT_ZK_PORT
#
# Environment (defaults in brackets)
#   PINOT_CONTROLLER_PORT    controller HTTP port [19000]
#   PINOT_BROKER_PORT        broker HTTP (query) port [18099]
#   PINOT_SERVER_PORT        server netty (query) port [18098]
#   PINOT_SERVER_ADMIN_PORT  server admin HTTP port (/health) [18097]
#   PINOT_ZK_PORT            ZooKeeper client port [12181]
#   VIGIL_CACHE              cache root [$HOME/.cache/vigil]
#   PINOT_HEAP               heap options of the JVM [-Xms128m -Xmx768m]
#   PINOT_OPTS               extra JVM options []
#   PINOT_START_TIMEOUT      seconds `start` waits for a healthy cluster [180]
#   JAVA                     java executable (tested with Java 17) [java]
#
# Memory: one JVM (ZooKeeper + controller + broker + server), measured on
# this project's 2-core machine with Java 17 and the default heap options:
# RSS ~330-360 MiB right after start (heap ~90 MiB used, metaspace ~80 MiB,
# ~200 threads), ~430-460 MiB with five realtime tables holding 400k rows and
# committing segments. Budget 0.5-1 GB; the heap cap is -Xmx768m. The Kafka
# broker (scripts/kafka.sh) is a separate JVM (~370 MiB RSS).
#
# Time (this machine): first install ~50 s with an empty ~/.m2 (~230 MB of
# jars downloaded), ~30 s with ~/.m2 already filled; a start after that
# ~12-20 s; stop ~2-15 s (each consuming partition waits for its Kafka poll,
# see stream.kafka.fetch.timeout.millis in scripts/pinot/example/).
#
# Why Pinot 0.11.0: the Maven Central reachable from here serves pinot-server
# and pinot-tools only up to 0.11.0 (newer releases have just some modules,
# e.g. pinot-controller 1.2.0, pinot-broker 1.4.0/1.5.1), so 0.11.0 is the
# newest release that can be assembled. Its Kafka plugin is pinot-kafka-2.0
# (Kafka client 2.8.1), which consumes from the Kafka 4.x of scripts/kafka.sh.
# Example schema/table configs and an end-to-end check: scripts/pinot/example/.
#
# Layout under $VIGIL_CACHE/pinot
#   lib/                         the jars (+ .pom.sha256 stamp)
#   launcher/                    PinotLocal.class (+ .sha256 stamp)
#   cluster-$PINOT_CONTROLLER_PORT/
#     ports                      the ports this cluster was created with
#     conf/                      zoo.cfg, controller.conf, broker.conf,
#                                server.conf (written on every start)
#     data/                      zookeeper/, controller/ (segment store),
#                                server/ (segments, consuming segments)
#     logs/pinot.log             Pinot's and ZooKeeper's log (log4j2)
#     logs/pinot.out             the JVM's stdout/stderr
#     pinot.pid
#
# Messages go to stderr; stdout carries only `path` and `status` lines.
set -euo pipefail

SCRIPT_DIR=$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM=$SCRIPT_DIR/pinot/pom.xml
LAUNCHER=$SCRIPT_DIR/pinot/PinotLocal.java
LOG4J=$SCRIPT_DIR/pinot/log4j2.xml

PINOT_CONTROLLER_PORT=${PINOT_CONTROLLER_PORT:-19000}
PINOT_BROKER_PORT=${PINOT_BROKER_PORT:-18099}
PINOT_SERVER_PORT=${PINOT_SERVER_PORT:-18098}
PINOT_SERVER_ADMIN_PORT=${PINOT_SERVER_ADMIN_PORT:-18097}
PINOT_ZK_PORT=${PINOT_ZK_PORT:-12181}
VIGIL_CACHE=${VIGIL_CACHE:-${HOME:?HOME is not set}/.cache/vigil}
PINOT_HEAP=${PINOT_HEAP:--Xms128m -Xmx768m}
PINOT_OPTS=${PINOT_OPTS:-}
PINOT_START_TIMEOUT=${PINOT_START_TIMEOUT:-180}
JAVA=${JAVA:-java}

CLUSTER=PinotCluster
PORTS=("$PINOT_ZK_PORT" "$PINOT_CONTROLLER_PORT" "$PINOT_BROKER_PORT" "$PINOT_SERVER_PORT" "$PINOT_SERVER_ADMIN_PORT")
for p in "${PORTS[@]}"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
        echo "pinot.sh: ports must be numbers in 1..65535, got '$p'" >&2
        exit 2
    fi
done
if (($(printf '%s\n' "${PORTS[@]}" | sort -u | wc -l) != ${#PORTS[@]})); then
    echo "pinot.sh: the five ports must differ: ${PORTS[*]}" >&2
    exit 2
fi
PORTS_LINE="zk=$PINOT_ZK_PORT controller=$PINOT_CONTROLLER_PORT broker=$PINOT_BROKER_PORT server=$PINOT_SERVER_PORT server_admin=$PINOT_SERVER_ADMIN_PORT"

CONTROLLER_URL=http://127.0.0.1:$PINOT_CONTROLLER_PORT
BROKER_URL=http://127.0.0.1:$PINOT_BROKER_PORT
SERVER_ADMIN_URL=http://127.0.0.1:$PINOT_SERVER_ADMIN_PORT
BROKER_ID=Broker_127.0.0.1_$PINOT_BROKER_PORT
SERVER_ID=Server_127.0.0.1_$PINOT_SERVER_PORT

PCACHE=$VIGIL_CACHE/pinot # made absolute in prepare_dirs
LIBS='' LAUNCHER_CP='' INST='' CONF='' DATA='' LOGS='' PIDFILE='' PINOT_LOG=''

log() { echo "pinot.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# Create the cache directories and fix every path (absolute, whatever the cwd).
prepare_dirs() {
    mkdir -p "$PCACHE"
    PCACHE=$(cd -P "$PCACHE" && pwd)
    LIBS=$PCACHE/lib
    LAUNCHER_CP=$PCACHE/launcher
    INST=$PCACHE/cluster-$PINOT_CONTROLLER_PORT
    CONF=$INST/conf
    DATA=$INST/data
    LOGS=$INST/logs
    PIDFILE=$INST/pinot.pid
    PINOT_LOG=$LOGS/pinot.log
    mkdir -p "$CONF" "$DATA" "$LOGS"
}

# One lock for the whole cache: concurrent `start`s wait for each other
# instead of half-copying jars or starting two clusters. fd 9 is closed in
# the long-lived JVM (see start_jvm).
lock() {
    exec 9>"$PCACHE/.lock"
    flock -w 900 9 || die "could not lock $PCACHE/.lock within 900 s"
}

# Gather the jars with Maven unless the stamp says this pom was already done.
install_libs() {
    local want
    want=$(sha256sum "$POM" | cut -d' ' -f1)
    if [[ -f $LIBS/.pom.sha256 && $(<"$LIBS/.pom.sha256") == "$want" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found: Maven is needed to install Pinot"
    log "installing Pinot jars into $LIBS (mvn dependency:copy-dependencies)..."
    rm -rf "$LIBS.tmp"
    if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >"$PCACHE/mvn.log" 2>&1; then
        tail -n 40 "$PCACHE/mvn.log" >&2
        die "mvn dependency:copy-dependencies failed (pom: $POM; log: $PCACHE/mvn.log)"
    fi
    echo "$want" >"$LIBS.tmp/.pom.sha256"
    rm -rf "$LIBS"
    mv "$LIBS.tmp" "$LIBS"
    log "installed $(find "$LIBS" -name '*.jar' | wc -l) jars"
}

# Compile scripts/pinot/PinotLocal.java once (saves ~4 s per start over
# Java's source-file mode); again only when it or the jars change. Without a
# javac next to $JAVA, start_jvm runs the .java file in source-file mode.
LAUNCH_MAIN=''
compile_launcher() {
    local javac want
    LAUNCH_MAIN=$LAUNCHER
    javac=$(dirname "$(readlink -f "$(command -v "$JAVA")")")/javac
    [[ -x $javac ]] || return 0
    want=$(cat "$LAUNCHER" "$LIBS/.pom.sha256" | sha256sum | cut -d' ' -f1)
    if ! [[ -f $LAUNCHER_CP/.sha256 && $(<"$LAUNCHER_CP/.sha256") == "$want" ]]; then
        rm -rf "$LAUNCHER_CP"
        mkdir -p "$LAUNCHER_CP"
        "$javac" -nowarn -cp "$LIBS/*" -d "$LAUNCHER_CP" "$LAUNCHER" >&2 ||
            die "could not compile $LAUNCHER"
        echo "$want" >"$LAUNCHER_CP/.sha256"
    fi
    LAUNCH_MAIN=PinotLocal
}

# PID of our JVM if it is alive (the pid file alone could be stale, or its
# pid reused by another process), else fail.
pinot_pid() {
    local pid
    [[ -f $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -e "PinotLocal $CONF/zoo.cfg" -e "PinotLocal.java $CONF/zoo.cfg" || return 1
    echo "$pid"
}

# Is something accepting TCP connections on 127.0.0.1:$1? (bash's /dev/tcp)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ZooKeeper's four-letter "ruok" (whitelisted by PinotLocal.java).
zk_ok() {
    local reply
    port_open "$PINOT_ZK_PORT" || return 1
    # shellcheck disable=SC2016 # $1 expands in the inner bash
    reply=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf ruok >&3; head -c 4 <&3' _ "$PINOT_ZK_PORT" 2>/dev/null) || return 1
    [[ $reply == imok ]]
}

# GET a URL; prints the body; fails on a connection error or HTTP status >= 400.
http_get() { curl -fsS --max-time 5 "$1" 2>/dev/null; }

health_ok() { [[ $(http_get "$1/health") == OK ]]; }

# The controller knows the instance (it is in the cluster) and Helix has it
# live (enabled and connected).
registered() {
    local body
    body=$(http_get "$CONTROLLER_URL/instances/$1") || return 1
    [[ $body == *'"instanceName"'* ]]
}

# Fills HEALTH (lines "component: state") and returns 0 if all healthy.
HEALTH=''
check_health() {
    local ok=0 s
    HEALTH=''
    if zk_ok; then s=ok; else s=down; ok=1; fi
    HEALTH+="zookeeper  127.0.0.1:$PINOT_ZK_PORT: $s"$'\n'
    if health_ok "$CONTROLLER_URL"; then s=ok; else s='not healthy'; ok=1; fi
    HEALTH+="controller $CONTROLLER_URL: $s"$'\n'
    if ! registered "$BROKER_ID"; then
        s='not registered'; ok=1
    elif ! health_ok "$BROKER_URL"; then
        s='registered, not healthy'; ok=1
    else
        s=ok
    fi
    HEALTH+="broker     $BROKER_URL ($BROKER_ID): $s"$'\n'
    if ! registered "$SERVER_ID"; then
        s='not registered'; ok=1
    elif ! health_ok "$SERVER_ADMIN_URL"; then
        s='registered, not healthy'; ok=1
    else
        s=ok
    fi
    HEALTH+="server     $SERVER_ADMIN_URL ($SERVER_ID): $s"
    return $ok
}

show_log_tail() {
    local f
    for f in "$PINOT_LOG" "$LOGS/pinot.out"; do
        [[ -s $f ]] || continue
        echo "----- last 60 lines of $f -----" >&2
        tail -n 60 "$f" >&2
    done
    log "full log: $PINOT_LOG"
}

# The cluster's identity in ZooKeeper includes the ports (instance names such
# as Server_127.0.0.1_18098): reusing its data with other ports would leave
# dead instances holding the tables.
check_ports_file() {
    if [[ -f $INST/ports ]]; then
        local had
        had=$(<"$INST/ports")
        [[ $had == "$PORTS_LINE" ]] ||
            die "$INST was created with ports '$had', now '$PORTS_LINE': run 'scripts/pinot.sh reset'" \
                "(with the old ports in the environment) or use another PINOT_CONTROLLER_PORT"
    else
        echo "$PORTS_LINE" >"$INST/ports"
    fi
}

write_config() {
    mkdir -p "$DATA/zookeeper" "$DATA/controller" "$DATA/server/data" "$DATA/server/segmentTar"
    cat >"$CONF/zoo.cfg" <<EOF
# Written by scripts/pinot.sh on every start; edits here are overwritten.
dataDir=$DATA/zookeeper
clientPort=$PINOT_ZK_PORT
clientPortAddress=127.0.0.1
tickTime=2000
# Helix and Pinot open many connections from 127.0.0.1: no per-IP limit.
maxClientCnxns=0
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
    cat >"$CONF/controller.conf" <<EOF
# Written by scripts/pinot.sh on every start; edits here are overwritten.
pinot.service.role=CONTROLLER
controller.helix.cluster.name=$CLUSTER
controller.zk.str=127.0.0.1:$PINOT_ZK_PORT
controller.host=127.0.0.1
controller.port=$PINOT_CONTROLLER_PORT
controller.vip.host=127.0.0.1
controller.vip.port=$PINOT_CONTROLLER_PORT
controller.data.dir=$DATA/controller
controller.local.temp.dir=$DATA/controller-tmp
controller.mode=DUAL
cluster.tenant.isolation.enable=true
EOF
    cat >"$CONF/broker.conf" <<EOF
# Written by scripts/pinot.sh on every start; edits here are overwritten.
pinot.service.role=BROKER
pinot.cluster.name=$CLUSTER
pinot.zk.server=127.0.0.1:$PINOT_ZK_PORT
pinot.broker.hostname=127.0.0.1
pinot.broker.client.queryPort=$PINOT_BROKER_PORT
# Local cluster: no 10 s wait for in-flight queries on shutdown.
pinot.broker.delayShutdownTimeMs=0
EOF
    cat >"$CONF/server.conf" <<EOF
# Written by scripts/pinot.sh on every start; edits here are overwritten.
pinot.service.role=SERVER
pinot.cluster.name=$CLUSTER
pinot.zk.server=127.0.0.1:$PINOT_ZK_PORT
pinot.server.netty.host=127.0.0.1
pinot.server.netty.port=$PINOT_SERVER_PORT
pinot.server.adminapi.port=$PINOT_SERVER_ADMIN_PORT
pinot.server.grpc.enable=false
pinot.server.instance.dataDir=$DATA/server/data
pinot.server.instance.segmentTarDir=$DATA/server/segmentTar
# Local cluster: report "started" as soon as segments are loaded (checked every
# second, not every 10 s), and no 15 s query-drain wait on shutdown.
pinot.server.startup.serviceStatusCheckIntervalMs=1000
pinot.server.shutdown.enableQueryCheck=false
EOF
}

start_jvm() {
    local -a heap opts
    read -ra heap <<<"$PINOT_HEAP"
    read -ra opts <<<"$PINOT_OPTS"
    rm -rf "$INST/tmp"
    mkdir -p "$INST/tmp"
    echo "===== $(date -u +%FT%TZ) pinot.sh start ($PORTS_LINE) =====" >>"$LOGS/pinot.out"
    # The --add-opens are those of Pinot's own launch scripts for Java 17.
    # stdin/stdout/stderr detached so that a caller reading our output is not
    # kept waiting by the JVM; fd 9 (the lock) closed so the lock is released
    # when this script exits.
    nohup "$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=200 \
        -XX:+ExitOnOutOfMemoryError -XX:ErrorFile="$LOGS/hs_err_pid%p.log" \
        -Djava.awt.headless=true -Djava.io.tmpdir="$INST/tmp" \
        --add-opens=java.base/java.nio=ALL-UNNAMED \
        --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
        --add-opens=java.base/java.lang=ALL-UNNAMED \
        --add-opens=java.base/java.util=ALL-UNNAMED \
        --add-opens=java.base/java.lang.reflect=ALL-UNNAMED \
        --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED \
        --add-exports=java.base/jdk.internal.ref=ALL-UNNAMED \
        --add-exports=java.base/sun.nio.ch=ALL-UNNAMED \
        -Dlog4j2.configurationFile="$LOG4J" -Dvigil.pinot.logdir="$LOGS" \
        -Dvigil.pinot.cluster="$CLUSTER" \
        "${opts[@]}" -cp "$LAUNCHER_CP:$LIBS/*" "$LAUNCH_MAIN" "$CONF/zoo.cfg" "$PINOT_ZK_PORT" \
        StartServiceManager -zkAddress "127.0.0.1:$PINOT_ZK_PORT" -clusterName "$CLUSTER" -port -1 \
        -bootstrapConfigPaths "$CONF/controller.conf" "$CONF/broker.conf" "$CONF/server.conf" \
        </dev/null >>"$LOGS/pinot.out" 2>&1 9>&- &
    echo $! >"$PIDFILE"
}

# Wait until the cluster is healthy; on failure print the log and stop it.
wait_until_healthy() {
    local pid=$1 deadline=$((SECONDS + PINOT_START_TIMEOUT))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log_tail
            rm -f "$PIDFILE"
            die "the Pinot JVM exited during startup (see the log above)"
        fi
        if check_health; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            show_log_tail
            echo "$HEALTH" >&2
            stop_jvm
            die "the cluster was not healthy within ${PINOT_START_TIMEOUT}s"
        fi
        sleep 1
    done
}

stop_jvm() {
    local pid i
    if ! pid=$(pinot_pid); then
        rm -f "$PIDFILE"
        log "not running (controller port $PINOT_CONTROLLER_PORT)"
        return 0
    fi
    log "stopping Pinot (pid $pid)..."
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
    local pid p t0=$SECONDS
    prepare_dirs
    lock
    if pid=$(pinot_pid); then
        # Maybe still coming up (e.g. started by a `start` that was killed).
        wait_until_healthy "$pid"
        log "already running (pid $pid); controller $CONTROLLER_URL, broker $BROKER_URL"
        return 0
    fi
    rm -f "$PIDFILE"
    for p in "${PORTS[@]}"; do
        if port_open "$p"; then
            die "port $p is already in use by a process this script did not start" \
                "(from $INST); stop it or choose other PINOT_*_PORT values"
        fi
    done
    install_libs
    compile_launcher
    check_ports_file
    write_config
    start_jvm
    pid=$(<"$PIDFILE")
    log "starting Pinot (pid $pid); log: $PINOT_LOG"
    wait_until_healthy "$pid"
    log "up after $((SECONDS - t0)) s: controller $CONTROLLER_URL, broker $BROKER_URL, zookeeper 127.0.0.1:$PINOT_ZK_PORT"
}

cmd_stop() {
    prepare_dirs
    lock
    stop_jvm
}

cmd_status() {
    local pid rss
    prepare_dirs
    if ! pid=$(pinot_pid); then
        log "not running (controller port $PINOT_CONTROLLER_PORT; log: $PINOT_LOG)"
        return 3
    fi
    rss=$(awk '/^VmRSS:/ {printf "%d MiB", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || true)
    echo "pid $pid, RSS ${rss:-?}, log $PINOT_LOG"
    if check_health; then
        echo "$HEALTH"
        return 0
    fi
    echo "$HEALTH"
    return 1
}

cmd_reset() {
    prepare_dirs
    lock
    stop_jvm
    rm -rf "$INST"
    log "deleted $INST"
}

usage() {
    sed -n '/^# Usage:/,/^# Endpoints/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
}

main() {
    local cmd=${1:-}
    if (($# > 0)); then shift; fi
    case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    path)
        prepare_dirs
        echo "$PCACHE"
        ;;
    reset) cmd_reset ;;
    -h | --help | help) usage ;;
    *)
        usage
        exit 2
        ;;
    esac
}

main "$@"
