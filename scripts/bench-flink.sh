#!/usr/bin/env bash
# vigil against Apache Flink SQL (PyFlink from PyPI) on the same per-device window
# statistics over the same generated file.
#
# 1. Ensures a cached venv with apache-flink (created only when missing; pip cache kept).
# 2. Correctness check (always first; fast): generates a small file, runs vigil (engine only,
#    1 min and 5 min tumbling rows), gives Flink exactly the records vigil accepted
#    (scripts/flink/tools.py prep: rejects.jsonl lines left out), runs Flink SQL TUMBLE 1 min
#    and HOP 5 min / 1 min (scripts/flink/flink_stats.py, local mini-cluster, parallelism 2)
#    and compares row by row (tools.py compare): the same (device, window) keys, equal
#    integer fields, readings within 1e-9 relative / 1e-6 absolute. A difference fails the
#    script, naming the first differing row.
# 3. Timed runs (skipped with --check-only): generates EVENTS records (not timed), then
#      vigil engine only (1m sliding + 1m tumbling, no detectors)  vs  Flink TUMBLE 1 min
#      vigil default job (1m/5m/1h sliding, detectors)             vs  Flink HOP 5 min / 1 min
#    both computing count, byte/packet sums, external bytes, distinct destinations and
#    ports, mean/std/min/max of the readings; Flink writes into a blackhole sink. vigil is
#    timed by wall clock (`vigil run -w 2 --serve off --exit-when-done`, process start to
#    exit). Flink is timed from the job's submission to its end (Flink's job execution; the
#    JVM start-up and SQL planning are reported separately, with the whole process's wall
#    clock). Rates are accepted events / seconds; the ratio is vigil's rate / Flink's.
#    --repeat N times each job N times and reports the fastest (the machine is shared).
#
# Known limits of the SQL side (none occurs in generated data; the check would show it):
# the internal-range test reads dotted-quad text, so IPv4-mapped IPv6 text (::ffff:10.1.2.3)
# counts as external in Flink and internal in vigil, and two spellings of one address are
# two destinations; counters above 2^63-1 do not fit Flink's BIGINT; a window whose
# n*sum(q^2) exceeds 38 digits gets a NULL std in Flink (vigil falls back to floating point).
#
# Usage: scripts/bench-flink.sh [--check-only] [--events N] [--devices N] [--rate R] ...
#        (see --help). Idempotent: every run works in a fresh temporary folder.
# Environment: VIGIL (binary; default ${CARGO_TARGET_DIR:-target}/release/vigil, copied
#   before use so a rebuild cannot change it mid-run), VIGIL_FLINK_VENV
#   [$HOME/.cache/vigil/flink-venv], VIGIL_FLINK_VERSION [2.3.0], VIGIL_FLINK_PYTHON
#   (an interpreter for the venv; default: the first of python3.12..python3.9, python3
#   that apache-flink supports), TMPDIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELPERS=$ROOT/scripts/flink
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/vigil
VENV=${VIGIL_FLINK_VENV:-$CACHE/flink-venv}
FLINK_VERSION=${VIGIL_FLINK_VERSION:-2.3.0}

EVENTS=${EVENTS:-4000000}
DEVICES=${DEVICES:-100000}
RATE=${RATE:-6}
SEED=${SEED:-1}
CHECK_EVENTS=${CHECK_EVENTS:-200000}
CHECK_DEVICES=${CHECK_DEVICES:-2000}
CHECK_SEED=${CHECK_SEED:-5}
WORKERS=2
PARALLELISM=2
CHECK_ONLY=0
SKIP_CHECK=0
KEEP=0
REPEAT=1

usage() {
    cat <<EOF
Usage: scripts/bench-flink.sh [options]

Runs the same per-device window statistics in vigil and in Apache Flink SQL (PyFlink,
local mini-cluster) over the same generated file: first a correctness check (vigil's
windows.jsonl against Flink's TUMBLE 1m and HOP 5m/1m rows), then timed runs, and prints
both rates and the ratio.

Options:
  --check-only          only the correctness check (fast; exits non-zero on a difference)
  --skip-check          only the timed runs
  --events N            records to generate for the timed runs [$EVENTS]
  --devices N           devices for the timed runs [$DEVICES]
  --rate R              events per device per minute for the timed runs [$RATE]
  --seed S              generator seed for the timed runs [$SEED]
  --check-events N      records for the check [$CHECK_EVENTS]
  --check-devices N     devices for the check [$CHECK_DEVICES]
  --check-seed S        generator seed for the check [$CHECK_SEED]
  --workers N           vigil worker threads (-w) [$WORKERS]
  --parallelism N       Flink parallelism (and prepared input files) [$PARALLELISM]
  --repeat N            time each job N times and report the fastest run [$REPEAT]
  --keep                keep the work folder (generated files, outputs, Flink logs)
  -h, --help            this help

Environment: VIGIL (vigil binary), VIGIL_FLINK_VENV [$VENV],
VIGIL_FLINK_VERSION [$FLINK_VERSION], VIGIL_FLINK_PYTHON (interpreter for the venv),
JVM_ARGS (extra options for Flink's JVM, e.g. -Xmx12g; default heap: 1/4 of memory),
EVENTS, DEVICES, RATE, SEED, CHECK_EVENTS, CHECK_DEVICES, CHECK_SEED (defaults of the flags).
EOF
}

while (($#)); do
    case $1 in
        --check-only) CHECK_ONLY=1 ;;
        --skip-check) SKIP_CHECK=1 ;;
        --events) EVENTS=${2:?--events needs a value}; shift ;;
        --devices) DEVICES=${2:?--devices needs a value}; shift ;;
        --rate) RATE=${2:?--rate needs a value}; shift ;;
        --seed) SEED=${2:?--seed needs a value}; shift ;;
        --check-events) CHECK_EVENTS=${2:?--check-events needs a value}; shift ;;
        --check-devices) CHECK_DEVICES=${2:?--check-devices needs a value}; shift ;;
        --check-seed) CHECK_SEED=${2:?--check-seed needs a value}; shift ;;
        --workers) WORKERS=${2:?--workers needs a value}; shift ;;
        --parallelism) PARALLELISM=${2:?--parallelism needs a value}; shift ;;
        --repeat) REPEAT=${2:?--repeat needs a value}; shift ;;
        --keep) KEEP=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-flink: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for n in "$EVENTS" "$DEVICES" "$CHECK_EVENTS" "$CHECK_DEVICES" "$WORKERS" "$PARALLELISM" "$REPEAT"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench-flink: '$n' is not a positive whole number" >&2; exit 2; }
done
if ((CHECK_ONLY && SKIP_CHECK)); then
    echo "bench-flink: --check-only and --skip-check exclude each other" >&2
    exit 2
fi

log() { echo "== $*"; }
die() { echo "bench-flink: $*" >&2; exit 1; }
now() { date +%s.%N; }
# Arithmetic on decimals: calc 'EXPR' prints the value (Python: bc may be absent).
calc() { "${PY:-python3}" -c "print($1)"; }

# --- the venv with PyFlink -------------------------------------------------------------
pick_python() {
    local c
    for c in ${VIGIL_FLINK_PYTHON:-} python3.12 python3.11 python3.10 python3.9 python3; do
        command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import sys; sys.exit(0 if (3, 9) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
            command -v "$c"
            return
        fi
    done
    die "no Python 3.9-3.12 for apache-flink $FLINK_VERSION (found: $(python3 --version 2>&1));" \
        "install one from Debian (apt-get install python3.11) or set VIGIL_FLINK_PYTHON"
}

ensure_venv() {
    local stamp=$VENV/.vigil-apache-flink
    if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "$FLINK_VERSION" ]] &&
        "$VENV/bin/python" -c 'import pyflink' 2>/dev/null; then
        return
    fi
    local py t0=$SECONDS
    py=$(pick_python)
    log "installing apache-flink $FLINK_VERSION into $VENV ($("$py" --version); pip cache: $CACHE/pip)"
    mkdir -p "$CACHE"
    if [[ -e $VENV ]]; then
        [[ -f $VENV/pyvenv.cfg ]] || die "$VENV exists and is not a venv; set VIGIL_FLINK_VENV elsewhere"
        rm -rf "$VENV"
    fi
    "$py" -m venv "$VENV"
    PIP_CACHE_DIR=$CACHE/pip "$VENV/bin/pip" install -q --upgrade pip
    PIP_CACHE_DIR=$CACHE/pip "$VENV/bin/pip" install -q "apache-flink==$FLINK_VERSION"
    echo "$FLINK_VERSION" >"$stamp"
    log "venv ready in $((SECONDS - t0)) s"
}

command -v java >/dev/null || die "PyFlink needs Java (11 or later) on PATH"
ensure_venv
PY=$VENV/bin/python

# --- vigil -------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-bench-flink.XXXXXX")
if ((KEEP)); then
    trap 'echo "== work folder kept: $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
src_bin=${VIGIL:-${CARGO_TARGET_DIR:-$ROOT/target}/release/vigil}
[[ -x $src_bin ]] || die "no vigil binary at $src_bin: build it (cargo build --release) or set VIGIL"
cp "$src_bin" "$work/vigil"
VIGIL_BIN=$work/vigil

log "versions: $("$VIGIL_BIN" --version); $("$PY" --version);" \
    "apache-flink $("$PY" -c 'from importlib.metadata import version; print(version("apache-flink"))');" \
    "$(java -version 2>&1 | head -1)"
log "work folder: $work"

# vigil configs: every detector off (the engine alone), and the windows given.
engine_config() { # FILE TUMBLING-LIST
    {
        echo '# vigil engine only: one 1 min sliding window, tumbling rows, no detectors'
        echo '[windows]'
        echo 'sliding = ["1m"]'
        echo "tumbling = $2"
        local d
        for d in $("$VIGIL_BIN" detectors | sed -n 's/^\([a-z_0-9]*\) (\(en\|dis\)abled by default)$/\1/p'); do
            printf '[detectors.%s]\nenabled = false\n' "$d"
        done
    } >"$1"
    grep -q '^\[detectors\.' "$1" || die "could not list vigil's detectors (vigil detectors)"
}

# run_vigil NAME INPUT OUT [CONFIG]: runs vigil, sets SECS (wall clock), ACCEPTED and RSS_MIB
# (vigil's own peak RSS from summary.json).
run_vigil() {
    local name=$1 input=$2 out=$3 config=${4:-} t0 t1
    local args=(run --input "$input" --out "$out" -w "$WORKERS" --serve off --exit-when-done --progress never)
    [[ -n $config ]] && args+=(--config "$config")
    t0=$(now)
    # In the work folder: nothing of the caller's folder (a ./models registry) is picked up.
    if ! (cd "$work" && "$VIGIL_BIN" "${args[@]}") >"$work/$name.log" 2>&1; then
        cat "$work/$name.log" >&2
        die "vigil run ($name) failed"
    fi
    t1=$(now)
    SECS=$(calc "$t1 - $t0")
    read -r ACCEPTED RSS_MIB < <("$PY" -c 'import json,sys; s = json.load(open(sys.argv[1]))
print(s["accepted"], s.get("peak_rss_bytes", 0) // 2**20)' "$out/summary.json")
    [[ -n $ACCEPTED ]] || die "vigil run ($name) wrote no readable $out/summary.json"
}

# run_flink NAME WINDOW SINK INPUT [OUT]: runs flink_stats.py, sets FLINK_TOTAL (process
# wall clock) and FLINK_JSON (its timing file).
run_flink() {
    local name=$1 window=$2 sink=$3 input=$4 out=${5:-} t0 t1
    local args=(--input "$input" --window "$window" --sink "$sink" --parallelism "$PARALLELISM"
        --timing "$work/$name.timing.json")
    [[ -n $out ]] && args+=(--out "$out")
    t0=$(now)
    if ! "$PY" "$HELPERS/flink_stats.py" "${args[@]}" >"$work/$name.log" 2>&1; then
        tail -n 60 "$work/$name.log" >&2
        die "Flink job ($name) failed (log: $work/$name.log; --keep keeps it)"
    fi
    t1=$(now)
    FLINK_TOTAL=$(calc "$t1 - $t0")
    FLINK_JSON=$work/$name.timing.json
}
# timing KEY: a number from the Flink run's timing file (nan when Flink did not report it).
timing() {
    "$PY" -c 'import json,sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print("nan" if v is None else v)' \
        "$FLINK_JSON" "$1"
}

# less A B: whether decimal A < B.
less() { [[ $(calc "int($1 < $2)") == 1 ]]; }

# best_vigil NAME INPUT OUT [CONFIG]: --repeat runs; BEST = the fastest wall clock, BEST_RSS
# that run's peak RSS (MiB).
best_vigil() {
    local i best=
    for ((i = 1; i <= REPEAT; i++)); do
        rm -rf "$3"
        run_vigil "$@"
        printf '   run %d: %.2f s, peak RSS %s MiB\n' "$i" "$SECS" "$RSS_MIB"
        if [[ -z $best ]] || less "$SECS" "$best"; then best=$SECS; BEST_RSS=$RSS_MIB; fi
    done
    BEST=$best
}

# best_flink NAME WINDOW: --repeat runs into the blackhole sink; FLINK_JSON = the timing of
# the run with the shortest job execution, BEST_TOTAL = that run's process wall clock.
best_flink() {
    local i run best=
    for ((i = 1; i <= REPEAT; i++)); do
        run_flink "$1" "$2" blackhole "$work/flink-in"
        run=$(timing run_s)
        printf '   run %d: job %.2f s (Flink net runtime %.2f s); JVM start %.1f s, plan/submit %.1f s; process total %.2f s; JVM peak RSS %s MiB\n' \
            "$i" "$run" "$(timing net_runtime_s)" "$(timing startup_s)" "$(timing plan_submit_s)" "$FLINK_TOTAL" \
            "$(timing jvm_peak_rss_mib)"
        if [[ -z $best ]] || less "$run" "$best"; then
            best=$run
            cp "$FLINK_JSON" "$work/$1.best.json"
            BEST_TOTAL=$FLINK_TOTAL
        fi
    done
    FLINK_JSON=$work/$1.best.json
}

# --- 2. correctness check ----------------------------------------------------------------
if ((!SKIP_CHECK)); then
    check_start=$SECONDS
    log "check: generating $CHECK_EVENTS events over $CHECK_DEVICES devices (seed $CHECK_SEED)"
    "$VIGIL_BIN" generate --events "$CHECK_EVENTS" --devices "$CHECK_DEVICES" --seed "$CHECK_SEED" \
        --out "$work/check.csv" >"$work/check-generate.log" 2>&1
    engine_config "$work/check.toml" '["1m", "5m"]'
    run_vigil check-vigil "$work/check.csv" "$work/check-vigil" "$work/check.toml"
    log "check: vigil: $(grep -m1 '^events read' "$work/check-vigil.log" || echo "accepted $ACCEPTED")"
    "$PY" "$HELPERS/tools.py" prep --csv "$work/check.csv" --rejects "$work/check-vigil/rejects.jsonl" \
        --out "$work/check-flink-in" --parts "$PARALLELISM"
    status=0
    log "check: Flink TUMBLE 1 min against vigil's 1 min tumbling rows"
    run_flink check-flink-tumble tumble json "$work/check-flink-in" "$work/check-flink-tumble"
    "$PY" "$HELPERS/tools.py" compare --vigil "$work/check-vigil/windows.jsonl" \
        --flink "$work/check-flink-tumble" --len-ms 60000 || status=1
    log "check: Flink HOP 5 min / 1 min (windows at multiples of 5 min) against vigil's 5 min tumbling rows"
    run_flink check-flink-hop hop json "$work/check-flink-in" "$work/check-flink-hop"
    "$PY" "$HELPERS/tools.py" compare --vigil "$work/check-vigil/windows.jsonl" \
        --flink "$work/check-flink-hop" --len-ms 300000 || status=1
    ((status == 0)) || die "check FAILED: vigil and Flink differ (see above)"
    log "check passed in $((SECONDS - check_start)) s"
fi
if ((CHECK_ONLY)); then exit 0; fi

# --- 3. timed runs -----------------------------------------------------------------------
log "generating $EVENTS events over $DEVICES devices, $RATE events/device/min (seed $SEED; not timed)"
"$VIGIL_BIN" generate --events "$EVENTS" --devices "$DEVICES" --rate "$RATE" --seed "$SEED" \
    --out "$work/events.csv" 2>&1 | tail -n 1
engine_config "$work/engine.toml" '["1m"]'

log "timed: vigil engine only (1m sliding + 1m tumbling, no detectors), -w $WORKERS"
best_vigil vigil-engine "$work/events.csv" "$work/vigil-engine" "$work/engine.toml"
V_ENGINE=$BEST
V_ENGINE_RSS=$BEST_RSS
V_ACCEPTED=$ACCEPTED

log "Flink input: the $V_ACCEPTED records vigil accepted, in $PARALLELISM files (not timed)"
"$PY" "$HELPERS/tools.py" prep --csv "$work/events.csv" --rejects "$work/vigil-engine/rejects.jsonl" \
    --out "$work/flink-in" --parts "$PARALLELISM"

log "timed: Flink TUMBLE 1 min, blackhole sink, parallelism $PARALLELISM"
best_flink flink-tumble tumble
F_TUMBLE_RUN=$(timing run_s)
F_TUMBLE_NET=$(timing net_runtime_s)
F_TUMBLE_PLAN=$(timing plan_submit_s)
F_TUMBLE_START=$(timing startup_s)
F_TUMBLE_TOTAL=$BEST_TOTAL
F_TUMBLE_RSS=$(timing jvm_peak_rss_mib)

log "timed: vigil default job (1m/5m/1h sliding, 1m tumbling, default detectors), -w $WORKERS"
best_vigil vigil-default "$work/events.csv" "$work/vigil-default"
V_DEFAULT=$BEST
V_DEFAULT_RSS=$BEST_RSS
((ACCEPTED == V_ACCEPTED)) || die "the two vigil jobs accepted different records ($V_ACCEPTED, $ACCEPTED)"

log "timed: Flink HOP 5 min slide 1 min, blackhole sink, parallelism $PARALLELISM"
best_flink flink-hop hop
F_HOP_RUN=$(timing run_s)
F_HOP_NET=$(timing net_runtime_s)
F_HOP_PLAN=$(timing plan_submit_s)
F_HOP_START=$(timing startup_s)
F_HOP_TOTAL=$BEST_TOTAL
F_HOP_RSS=$(timing jvm_peak_rss_mib)

rate() { calc "round($V_ACCEPTED / $1)"; }
echo
echo "== vigil vs Flink SQL: $EVENTS records ($V_ACCEPTED accepted), $DEVICES devices, $RATE events/device/min"
echo "   vigil: wall clock of 'vigil run -w $WORKERS' (process start to exit); fastest of $REPEAT run(s) per job."
echo "   Flink: job execution, submission to end (the ratio uses this); JVM start-up, SQL planning"
echo "   and the whole process (JVM start to job end) shown beside it. events/s = accepted events / s."
echo "   RSS: peak resident memory (vigil: its summary.json; Flink: the JVM's VmHWM)."
row() { # JOB ENGINE SECONDS RSS [FLINK-EXTRA]
    printf '%-34s %-6s %9.2f %10s %9s%s\n' "$1" "$2" "$3" "$(rate "$3")" "$4" "${5:+   $5}"
}
flink_extra() { # START PLAN NET TOTAL
    printf 'start %.1f + plan/submit %.1f s; net %.2f s; process %.2f s = %s ev/s' "$1" "$2" "$3" "$4" "$(rate "$4")"
}
printf '%-34s %-6s %9s %10s %9s   %s\n' "job" "engine" "seconds" "events/s" "RSS MiB" "Flink JVM/process details"
row "engine only: 1m tumbling" vigil "$V_ENGINE" "$V_ENGINE_RSS"
row "  vs TUMBLE 1m" Flink "$F_TUMBLE_RUN" "$F_TUMBLE_RSS" \
    "$(flink_extra "$F_TUMBLE_START" "$F_TUMBLE_PLAN" "$F_TUMBLE_NET" "$F_TUMBLE_TOTAL")"
row "default job: 1m/5m/1h + detectors" vigil "$V_DEFAULT" "$V_DEFAULT_RSS"
row "  vs HOP 5m slide 1m" Flink "$F_HOP_RUN" "$F_HOP_RSS" \
    "$(flink_extra "$F_HOP_START" "$F_HOP_PLAN" "$F_HOP_NET" "$F_HOP_TOTAL")"
printf 'ratio vigil/Flink (events/s; Flink job execution): engine only %.2fx, default job %.2fx\n' \
    "$(calc "$F_TUMBLE_RUN / $V_ENGINE")" "$(calc "$F_HOP_RUN / $V_DEFAULT")"
printf 'ratio against Flink incl. JVM start-up and planning (process total): %.2fx, %.2fx\n' \
    "$(calc "$F_TUMBLE_TOTAL / $V_ENGINE")" "$(calc "$F_HOP_TOTAL / $V_DEFAULT")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores; a busy machine skews both)"
