"""vigil's Superset dashboard on Pinot: import it, and run its charts' queries.

Run with the Python of Superset's venv (scripts/superset.sh calls it):
  vigil_superset.py import --broker-port P --controller-port P --windows-table T
                           --anomalies-table T --device D
      Fills the export-format bundle in scripts/superset/dashboard/ (YAML with
      __PLACEHOLDERS__) with those names, zips it and imports it through
      /api/v1/dashboard/import/ (after deleting an earlier import), then saves
      each chart's query (its query_context, built from the chart's params) through the
      REST API, so /api/v1/chart/{id}/data/ runs exactly what the chart shows.
  vigil_superset.py chart-data
      Prints {slice_name: {"query": SQL, "rows": [...]}} for every chart of the dashboard,
      each from GET /api/v1/chart/{id}/data/ (Superset runs the chart's query on Pinot).

Environment: SUPERSET_URL (http://127.0.0.1:18088), SUPERSET_USER / SUPERSET_PASSWORD
(admin / admin).
"""

import argparse
import io
import json
import os
import pathlib
import sys
import zipfile

import requests

HERE = pathlib.Path(__file__).resolve().parent
BUNDLE = HERE / "dashboard"
URL = os.environ.get("SUPERSET_URL", "http://127.0.0.1:18088")
SLUG = "vigil"


def session():
    s = requests.Session()
    r = s.post(
        f"{URL}/api/v1/security/login",
        json={
            "username": os.environ.get("SUPERSET_USER", "admin"),
            "password": os.environ.get("SUPERSET_PASSWORD", "admin"),
            "provider": "db",
            "refresh": False,
        },
        timeout=30,
    )
    r.raise_for_status()
    s.headers["Authorization"] = "Bearer " + r.json()["access_token"]
    return s


def bundle(values):
    """The bundle as ZIP bytes, placeholders filled."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for path in sorted(BUNDLE.rglob("*.yaml")):
            text = path.read_text()
            for key, value in values.items():
                text = text.replace(f"__{key}__", str(value))
            z.writestr(f"vigil_dashboard/{path.relative_to(BUNDLE)}", text)
    return out.getvalue()


def query_context(form, dataset_id):
    """What the chart runs: its params as a query (time grain on the x axis, group-bys,
    metrics, filters, order, limit)."""
    columns = []
    if form.get("x_axis"):
        columns.append(
            {
                "timeGrain": form.get("time_grain_sqla"),
                "columnType": "BASE_AXIS",
                "sqlExpression": form["x_axis"],
                "label": form["x_axis"],
                "expressionType": "SQL",
            }
        )
    columns += form.get("groupby", [])
    filters = [
        {"col": f["subject"], "op": f["operator"], "val": f["comparator"]}
        for f in form.get("adhoc_filters", [])
        if f.get("expressionType") == "SIMPLE"
    ]
    order = form.get("timeseries_limit_metric")
    query = {
        "columns": columns,
        "metrics": form.get("metrics", []),
        "filters": filters,
        "orderby": [[order, not form.get("order_desc", True)]] if order else [],
        "row_limit": form.get("row_limit", 10000),
        "time_range": form.get("time_range", "No filter"),
        "extras": {"time_grain_sqla": form.get("time_grain_sqla"), "having": "", "where": ""},
        "series_columns": form.get("groupby", []) if form.get("x_axis") else [],
        "annotation_layers": [],
        "applied_time_extras": {},
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": False,
        "queries": [query],
        "form_data": form,
        "result_format": "json",
        "result_type": "full",
    }


def charts(s):
    """(id, slice_name) of the dashboard's charts."""
    r = s.get(f"{URL}/api/v1/dashboard/{SLUG}/charts", timeout=30)
    r.raise_for_status()
    return [(c["id"], c["slice_name"]) for c in r.json()["result"]]


def clear(s):
    """Deletes an earlier import (the dashboard, its charts and their datasets): an import
    over existing UUIDs keeps the old charts' params and datasets' tables."""
    r = s.get(f"{URL}/api/v1/dashboard/{SLUG}", timeout=30)
    if r.status_code == 404:
        return
    r.raise_for_status()
    dashboard_id = r.json()["result"]["id"]
    datasets = set()
    for chart_id, _ in charts(s):
        form = json.loads(s.get(f"{URL}/api/v1/chart/{chart_id}", timeout=30).json()["result"]["params"])
        datasets.add(int(str(form["datasource"]).split("__")[0]))
    for path in [f"dashboard/{dashboard_id}"] + [f"chart/{c}" for c, _ in charts(s)] + [f"dataset/{d}" for d in datasets]:
        r = s.delete(f"{URL}/api/v1/{path}", timeout=30)
        if not r.ok and r.status_code != 404:
            sys.exit(f"deleting {path}: {r.status_code} {r.text}")


def do_import(args):
    values = {
        "BROKER_PORT": args.broker_port,
        "CONTROLLER_PORT": args.controller_port,
        "WINDOWS_TABLE": args.windows_table,
        "ANOMALIES_TABLE": args.anomalies_table,
        "DEVICE": args.device,
    }
    s = session()
    clear(s)
    r = s.post(
        f"{URL}/api/v1/dashboard/import/",
        files={"formData": ("vigil_dashboard.zip", bundle(values), "application/zip")},
        data={"overwrite": "true", "passwords": "{}"},
        timeout=120,
    )
    if not r.ok:
        sys.exit(f"importing the dashboard: {r.status_code} {r.text}")
    for chart_id, name in charts(s):
        r = s.get(f"{URL}/api/v1/chart/{chart_id}", timeout=30)
        r.raise_for_status()
        chart = r.json()["result"]
        form = json.loads(chart["params"])
        dataset_id = int(str(form["datasource"]).split("__")[0])
        qc = query_context(form, dataset_id)
        r = s.put(f"{URL}/api/v1/chart/{chart_id}", json={"query_context": json.dumps(qc)}, timeout=30)
        if not r.ok:
            sys.exit(f"saving the query of chart {name!r}: {r.status_code} {r.text}")
        print(f"chart {chart_id}: {name}")
    print(f"dashboard: {URL}/superset/dashboard/{SLUG}/")


def do_chart_data(_args):
    s = session()
    out = {}
    for chart_id, name in charts(s):
        r = s.get(f"{URL}/api/v1/chart/{chart_id}/data/", params={"format": "json"}, timeout=120)
        if not r.ok:
            sys.exit(f"chart {name!r}: {r.status_code} {r.text}")
        result = r.json()["result"][0]
        out[name] = {"query": result.get("query"), "rows": result["data"]}
    json.dump(out, sys.stdout)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("import")
    i.add_argument("--broker-port", default=os.environ.get("PINOT_BROKER_PORT", "18099"))
    i.add_argument("--controller-port", default=os.environ.get("PINOT_CONTROLLER_PORT", "19000"))
    i.add_argument("--windows-table", default="vigil_windows")
    i.add_argument("--anomalies-table", default="vigil_anomalies")
    i.add_argument("--device", default="vm-000001")
    i.set_defaults(run=do_import)
    c = sub.add_parser("chart-data")
    c.set_defaults(run=do_chart_data)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
