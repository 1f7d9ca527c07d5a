"""Per-device window statistics in Apache Flink SQL (PyFlink), the same ones vigil computes.

Runs one Flink SQL job in a local mini-cluster inside this Python process (the JVM is
started by PyFlink; no Flink cluster is needed) over CSV files prepared by `tools.py prep`
(header removed, only the records vigil accepted; see docs/semantics.md for vigil's rules):

    python flink_stats.py --input DIR --window tumble|hop --sink blackhole|json \
        [--out DIR] [--parallelism 2] [--timing FILE.json]

The query is pure SQL (no Python UDF on the hot path). Per device and window it computes
what vigil's `WindowStats` holds (src/window/stats.rs):

- count, bytes_out, bytes_in, packets: sums (an empty counter is 0, i.e. NULL for SUM);
- bytes_out_external: bytes_out to a dst_ip outside 10/8, 172.16/12, 192.168/16, checked on
  the dotted-quad text with SPLIT_INDEX (an absent address, empty or `::`, is never
  external; any other IPv6 text counts as external, which is vigil's rule for the default
  ranges except for IPv4-mapped IPv6 text such as `::ffff:10.0.0.1`, which the generator
  never writes);
- distinct_dst / distinct_ports: COUNT(DISTINCT) ignoring an absent address and port 0;
- readings: `q = ROUND(value * 1e6)` for values that parse, are finite and |v| <= 1e9
  (`inf`/`-inf` do not parse as Java doubles: TRY_CAST gives NULL, so they count as
  invalid, as NaN does); value_count, value_invalid, and the exact sums Σq, Σq² as
  DECIMAL(38, 0) (vigil keeps them in 128-bit integers); mean, population std, min and max
  are derived from those sums with the same floating-point steps as vigil.

Windows: TUMBLE 1 minute, or HOP 5 minutes sliding by 1 minute, over event time `ts`
(epoch ms) with a bounded-out-of-orderness watermark of 5 s. Flink's SQL watermark
`rt - INTERVAL '5.001' SECOND` equals the DataStream `forBoundedOutOfOrderness(5 s)`
(max - 5 s - 1 ms): a record exactly 5 s behind the highest time seen is still on time, as
in vigil (late means `ts < max - 5000`). The source is bounded, so the final MAX watermark
fires every open window at the end of the input.

Sinks: `blackhole` (timing: every column is consumed, nothing is written) or `json` (one
JSON object per row, vigil's field names, in files under --out; the check reads them).

Timing (seconds, written as JSON with --timing): `startup_s` JVM and table environment
start-up; `plan_submit_s` the `execute_sql(INSERT ...)` call (parsing, optimizing, code
generation, job submission); `run_s` from the job's submission to its end (the job
execution time: what bench-flink.sh compares with vigil); `net_runtime_s` Flink's own
JobExecutionResult net runtime; `process_to_done_s` from this script's start to the end;
`jvm_peak_rss_mib` the peak resident memory (VmHWM) of the JVM that PyFlink started.
"""

import argparse
import json
import os
import sys
import time

T_PROCESS = time.monotonic()

WINDOWS = {
    "tumble": "TUMBLE(TABLE events_q, DESCRIPTOR(rt), INTERVAL '1' MINUTE)",
    "hop": "HOP(TABLE events_q, DESCRIPTOR(rt), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)",
}

# Source table over the prepared CSV files (no header; an empty field reads as NULL).
SOURCE_DDL = """
CREATE TABLE events (
    ts BIGINT,
    device_id STRING,
    src_ip STRING,
    dst_ip STRING,
    dst_port INT,
    protocol STRING,
    bytes_out BIGINT,
    bytes_in BIGINT,
    packets BIGINT,
    duration_ms BIGINT,
    `value` STRING,
    rt AS TO_TIMESTAMP_LTZ(ts, 3),
    WATERMARK FOR rt AS rt - INTERVAL '5.001' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = '{path}',
    'format' = 'csv',
    'csv.null-literal' = '',
    'csv.ignore-parse-errors' = 'false'
)
"""

# Per-event derived columns. Two views so that the reading is parsed once and quantized once.
EVENTS_V_VIEW = """
CREATE TEMPORARY VIEW events_v AS
SELECT
    device_id,
    rt,
    bytes_out,
    bytes_in,
    packets,
    CASE WHEN dst_ip = '::' THEN CAST(NULL AS STRING) ELSE dst_ip END AS dst,
    NULLIF(dst_port, 0) AS port,
    CASE
        WHEN dst_ip IS NULL OR dst_ip = '::' THEN 0
        WHEN SPLIT_INDEX(dst_ip, '.', 0) = '10' THEN 0
        WHEN SPLIT_INDEX(dst_ip, '.', 0) = '192' AND SPLIT_INDEX(dst_ip, '.', 1) = '168' THEN 0
        WHEN SPLIT_INDEX(dst_ip, '.', 0) = '172'
             AND TRY_CAST(SPLIT_INDEX(dst_ip, '.', 1) AS INT) BETWEEN 16 AND 31 THEN 0
        ELSE COALESCE(bytes_out, 0)
    END AS bytes_out_ext,
    `value` IS NOT NULL AS has_value,
    TRY_CAST(`value` AS DOUBLE) AS v
FROM events
"""

EVENTS_Q_VIEW = """
CREATE TEMPORARY VIEW events_q AS
SELECT
    device_id, rt, bytes_out, bytes_in, packets, dst, port, bytes_out_ext, has_value,
    -- NaN fails the comparison, as do the infinities; inf/-inf did not parse (v IS NULL).
    CASE WHEN ABS(v) <= 1e9 THEN CAST(ROUND(v * 1e6) AS BIGINT) END AS q
FROM events_v
"""

# The aggregation, then the derived readings (same floating-point steps as vigil's
# WindowStats::value_mean / value_variance: sum as f64 / n / 1e6; exact numerator
# n·Σq² − (Σq)² as f64 / (n·n) / 1e12, clamped at 0, square root).
STATS_VIEW = """
CREATE TEMPORARY VIEW stats AS
SELECT
    device_id, window_start, window_end,
    cnt AS `count`, bytes_out, bytes_in, packets, bytes_out_external,
    distinct_dst, distinct_ports, value_count, value_invalid,
    CASE WHEN value_count > 0
         THEN CAST(qsum AS DOUBLE) / value_count / 1e6 END AS value_mean,
    CASE WHEN value_count > 0
         THEN SQRT(GREATEST(
                  CAST(value_count * qsumsq - qsum * qsum AS DOUBLE)
                  / (CAST(value_count AS DOUBLE) * value_count) / 1e12, 0.0)) END AS value_std,
    qmin / 1e6 AS value_min,
    qmax / 1e6 AS value_max
FROM (
    SELECT
        device_id, window_start, window_end,
        COUNT(*) AS cnt,
        COALESCE(SUM(bytes_out), 0) AS bytes_out,
        COALESCE(SUM(bytes_in), 0) AS bytes_in,
        COALESCE(SUM(packets), 0) AS packets,
        SUM(bytes_out_ext) AS bytes_out_external,
        COUNT(DISTINCT dst) AS distinct_dst,
        COUNT(DISTINCT port) AS distinct_ports,
        COUNT(q) AS value_count,
        SUM(CASE WHEN has_value AND q IS NULL THEN 1 ELSE 0 END) AS value_invalid,
        SUM(CAST(q AS DECIMAL(38, 0))) AS qsum,
        SUM(CAST(q AS DECIMAL(38, 0)) * CAST(q AS DECIMAL(38, 0))) AS qsumsq,
        MIN(q) AS qmin,
        MAX(q) AS qmax
    FROM TABLE({window})
    GROUP BY device_id, window_start, window_end
)
"""

SINK_COLUMNS = """
    device_id STRING,
    window_start TIMESTAMP(3),
    window_end TIMESTAMP(3),
    `count` BIGINT,
    bytes_out BIGINT,
    bytes_in BIGINT,
    packets BIGINT,
    bytes_out_external BIGINT,
    distinct_dst BIGINT,
    distinct_ports BIGINT,
    value_count BIGINT,
    value_invalid INT,
    value_mean DOUBLE,
    value_std DOUBLE,
    value_min DOUBLE,
    value_max DOUBLE
"""


def jvm_peak_rss_mib():
    """Peak resident memory of this process's children (the JVM PyFlink launched), MiB."""
    peak = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/{}/stat".format(pid)) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != os.getpid():
                continue
            with open("/proc/{}/status".format(pid)) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) // 1024)
        except (OSError, ValueError, IndexError):
            continue
    return peak or None


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="folder (or file) of prepared CSV")
    p.add_argument("--window", choices=sorted(WINDOWS), default="tumble")
    p.add_argument("--sink", choices=["blackhole", "json"], default="blackhole")
    p.add_argument("--out", help="output folder for --sink json")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--timing", help="write the timing as JSON to this file")
    p.add_argument("--explain", action="store_true", help="print the plan before running")
    args = p.parse_args()
    if args.sink == "json" and not args.out:
        p.error("--sink json needs --out")
    return args


def main():
    args = parse_args()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", str(args.parallelism))
    # Windows aligned to the epoch (UTC), so the window bounds are vigil's.
    conf.set("table.local-time-zone", "UTC")
    conf.set("pipeline.object-reuse", "true")
    t_ready = time.monotonic()

    t_env.execute_sql(SOURCE_DDL.format(path=os.path.abspath(args.input)))
    t_env.execute_sql(EVENTS_V_VIEW)
    t_env.execute_sql(EVENTS_Q_VIEW)
    t_env.execute_sql(STATS_VIEW.format(window=WINDOWS[args.window]))
    if args.sink == "blackhole":
        sink_with = "'connector' = 'blackhole'"
    else:
        sink_with = (
            "'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'".format(
                os.path.abspath(args.out)
            )
        )
    t_env.execute_sql("CREATE TABLE sink ({}) WITH ({})".format(SINK_COLUMNS, sink_with))
    insert = "INSERT INTO sink SELECT * FROM stats"
    if args.explain:
        print(t_env.explain_sql(insert), file=sys.stderr)

    t_submit = time.monotonic()
    result = t_env.execute_sql(insert)
    t_submitted = time.monotonic()
    result.wait()
    t_done = time.monotonic()
    net_ms = None
    try:
        job_result = result.get_job_client().get_job_execution_result().result()
        net_ms = job_result.get_net_runtime()
    except Exception as e:  # the timing below is still valid without it
        print("flink: could not read the job's net runtime: {}".format(e), file=sys.stderr)

    timing = {
        "window": args.window,
        "sink": args.sink,
        "parallelism": args.parallelism,
        "startup_s": round(t_ready - T_PROCESS, 3),
        "plan_submit_s": round(t_submitted - t_submit, 3),
        "run_s": round(t_done - t_submitted, 3),
        "net_runtime_s": None if net_ms is None else net_ms / 1000.0,
        "process_to_done_s": round(t_done - T_PROCESS, 3),
        "jvm_peak_rss_mib": jvm_peak_rss_mib(),
    }
    print("flink: " + json.dumps(timing))
    if args.timing:
        with open(args.timing, "w") as f:
            json.dump(timing, f)


if __name__ == "__main__":
    main()
