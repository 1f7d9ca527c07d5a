"""Helpers of scripts/bench-flink.sh that need no Flink: preparing Flink's input from a vigil
CSV, and comparing Flink's window rows with vigil's windows.jsonl.

    python tools.py prep --csv EVENTS.csv --rejects OUT/rejects.jsonl --out DIR [--parts 2]
    python tools.py compare --vigil OUT/windows.jsonl --flink DIR [--len-ms 60000]

prep: Flink cannot reject records the way vigil does (it has no rule for a malformed line,
and its late-record rule is per window, not per record), so it is given exactly the records
vigil accepted: the CSV without its header line, blank lines (not records, see
docs/semantics.md) and every line that vigil's rejects.jsonl names (`line` is the 1-based
line number in the file; the record text there must start with the reject's `raw` prefix,
which is checked). The accepted lines are dealt out round-robin into DIR/part-K.csv, one
file per Flink source reader (a CSV file is not split between readers); each part keeps
the file's order, so no record vigil accepted becomes late for Flink.

compare: vigil's rows of window length --len-ms against Flink's rows (JSON objects written
by flink_stats.py --sink json) of that length whose start is a multiple of it (all TUMBLE
rows; of HOP 5 min / 1 min, the windows that coincide with vigil's 5 min tumbling periods),
keyed by (device_id, window_start_ms): the same set of keys,
equal integer fields, and readings (mean, std, min, max) equal within 1e-9 relative or 1e-6
absolute. Exits 1 naming the first difference (in key order).
"""

import argparse
import calendar
import datetime
import glob
import json
import math
import os
import sys

INT_FIELDS = [
    "count",
    "bytes_out",
    "bytes_in",
    "packets",
    "bytes_out_external",
    "distinct_dst",
    "distinct_ports",
    "value_count",
    "value_invalid",
]
FLOAT_FIELDS = ["value_mean", "value_std", "value_min", "value_max"]
REL_TOL = 1e-9
ABS_TOL = 1e-6


def prep(args):
    with open(args.rejects, "rb") as f:
        rejects = {}
        for line in f:
            if line.strip():
                r = json.loads(line)
                rejects[int(r["line"])] = r
    os.makedirs(args.out, exist_ok=True)
    for old in glob.glob(os.path.join(args.out, "part-*.csv")):
        os.remove(old)
    parts = [open(os.path.join(args.out, "part-{}.csv".format(k)), "wb") for k in range(args.parts)]
    kept = dropped = blank = 0
    mismatched = []
    with open(args.csv, "rb") as f:
        for number, line in enumerate(f, start=1):
            if number == 1:
                if not line.startswith(b"ts,"):
                    sys.exit("prep: {} has no canonical header line".format(args.csv))
                continue
            r = rejects.get(number)
            if r is not None:
                raw = r.get("raw", "").encode("utf-8")
                if r.get("reason") != "encoding" and not line.startswith(raw):
                    mismatched.append(number)
                dropped += 1
                continue
            if not line.strip():
                blank += 1
                continue
            if not line.endswith(b"\n"):
                line += b"\n"
            parts[kept % args.parts].write(line)
            kept += 1
    for p in parts:
        p.close()
    if mismatched:
        sys.exit(
            "prep: rejects.jsonl does not match {} at line(s) {} (is it from this file?)".format(
                args.csv, mismatched[:5]
            )
        )
    if dropped != len(rejects):
        sys.exit(
            "prep: rejects.jsonl names {} lines, only {} are in {}".format(len(rejects), dropped, args.csv)
        )
    print(
        "prep: {} accepted records into {} part(s) in {} ({} rejected and {} blank lines left out)".format(
            kept, args.parts, args.out, dropped, blank
        )
    )


def to_ms(text):
    """Flink's JSON timestamp ('2026-01-05 00:01:00' or with 'T'/fraction), UTC, as epoch ms."""
    text = text.replace("T", " ").rstrip("Z")
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    dt = datetime.datetime.strptime(text, fmt)
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


def load_flink(folder, len_ms):
    rows = {}
    files = [
        p
        for p in sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True))
        if os.path.isfile(p) and not os.path.basename(p).startswith(".")
    ]
    if not files:
        sys.exit("compare: Flink wrote no files in {}".format(folder))
    for path in files:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                r["window_start_ms"] = to_ms(r.pop("window_start"))
                r["window_end_ms"] = to_ms(r.pop("window_end"))
                if r["window_end_ms"] - r["window_start_ms"] != len_ms or r["window_start_ms"] % len_ms:
                    continue
                key = (r["device_id"], r["window_start_ms"])
                if key in rows:
                    sys.exit("compare: Flink wrote two rows for {}".format(key))
                rows[key] = r
    return rows


def load_vigil(path, len_ms):
    rows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["window_len_ms"] != len_ms:
                continue
            key = (r["device_id"], r["window_start_ms"])
            if key in rows:
                sys.exit("compare: vigil wrote two rows for {}".format(key))
            rows[key] = r
    return rows


def floats_differ(a, b):
    if a is None or b is None:
        return (a is None) != (b is None)
    return not math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def compare(args):
    vigil = load_vigil(args.vigil, args.len_ms)
    flink = load_flink(args.flink, args.len_ms)
    problems = []
    if not vigil:
        problems.append("vigil wrote no rows of window length {} ms".format(args.len_ms))
    only_vigil = sorted(set(vigil) - set(flink))
    only_flink = sorted(set(flink) - set(vigil))
    if only_vigil:
        problems.append(
            "{} (device, window) rows only in vigil, first {}: {}".format(
                len(only_vigil), only_vigil[0], json.dumps(vigil[only_vigil[0]], sort_keys=True)
            )
        )
    if only_flink:
        problems.append(
            "{} (device, window) rows only in Flink, first {}: {}".format(
                len(only_flink), only_flink[0], json.dumps(flink[only_flink[0]], sort_keys=True)
            )
        )
    differing = 0
    bitwise = readings = 0
    first = None
    per_field = {}
    for key in sorted(set(vigil) & set(flink)):
        v, f = vigil[key], flink[key]
        fields = []
        if v["window_end_ms"] != f["window_end_ms"]:
            fields.append("window_end_ms")
        fields += [k for k in INT_FIELDS if v[k] != f[k]]
        fields += [k for k in FLOAT_FIELDS if floats_differ(v[k], f[k])]
        for k in FLOAT_FIELDS:
            if v[k] is not None:
                readings += 1
                bitwise += v[k] == f[k]
        if fields:
            differing += 1
            for k in fields:
                per_field[k] = per_field.get(k, 0) + 1
            if first is None:
                first = (key, fields, v, f)
    if first is not None:
        key, fields, v, f = first
        detail = ", ".join("{}: vigil {} flink {}".format(k, v[k], f[k]) for k in fields)
        problems.append(
            "{} rows differ (by field: {}); first: device {} window_start_ms {}: {}".format(
                differing, per_field, key[0], key[1], detail
            )
        )
    events_v = sum(r["count"] for r in vigil.values())
    events_f = sum(r["count"] for r in flink.values())
    if problems:
        print("compare: vigil and Flink DIFFER ({} vs {} rows, {} vs {} events):".format(
            len(vigil), len(flink), events_v, events_f))
        for p in problems:
            print("  - " + p)
        sys.exit(1)
    print(
        "compare: vigil and Flink agree on all {} rows of window length {} ms ({} events; "
        "integer fields equal; mean/std/min/max within {} relative or {} absolute, "
        "{} of {} bit for bit)".format(len(vigil), args.len_ms, events_v, REL_TOL, ABS_TOL, bitwise, readings)
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prep", help="Flink's input: the records vigil accepted")
    pp.add_argument("--csv", required=True)
    pp.add_argument("--rejects", required=True)
    pp.add_argument("--out", required=True)
    pp.add_argument("--parts", type=int, default=2)
    pc = sub.add_parser("compare", help="vigil's windows.jsonl against Flink's rows")
    pc.add_argument("--vigil", required=True)
    pc.add_argument("--flink", required=True)
    pc.add_argument("--len-ms", type=int, default=60000)
    args = p.parse_args()
    {"prep": prep, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    main()
