#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The Grafana dashboard contrib/grafana/sakeyd.json.

- valid JSON with a title, a uid and a Prometheus data source variable
  (`datasource`) that every panel and every query uses;
- unique panel ids, each panel inside the 24-column grid, with queries;
- every sakeyd_ metric an expression (or a variable's query) names is one
  the daemon writes: a family of monitor/metrics.c (a typo, or a metric
  renamed without the dashboard, fails);
- the panels the dashboard is for are there: SA age per link, next
  rotation, expiry, rotations, alerts, XFRM errors;
- with promtool (PATH, tools/ or $PROMTOOL; required in CI), every
  expression parses as PromQL once Grafana's variables are substituted.

usage: check-dashboard.py DASHBOARD METRICS_C
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from checks import Checks  # noqa: E402

DASHBOARD, METRICS_C = sys.argv[1:3]
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
check = Checks()

with open(METRICS_C) as f:
    written = set(re.findall(r'family\(\s*&?o,\s*"(sakeyd_[a-z_]+)"', f.read()))
check(len(written) >= 10, f"monitor/metrics.c names its families ({len(written)})")

try:
    with open(DASHBOARD) as f:
        dash = json.load(f)
except (OSError, ValueError) as e:
    check(False, f"{DASHBOARD}: valid JSON ({e})")
    check.finish()
check(isinstance(dash, dict) and dash.get("title") and dash.get("uid"),
      "the dashboard has a title and a uid")
variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
ds = variables.get("datasource", {})
check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
      "a data source variable 'datasource' of type prometheus")
DS_REF = "${datasource}"


def uses_ds(obj):
    d = obj.get("datasource")
    return isinstance(d, dict) and d.get("uid") == DS_REF or d == DS_REF


exprs = []  # (where, expr)
for name, v in variables.items():
    if v.get("type") == "query":
        check(uses_ds(v), f"variable {name} queries the data source variable")
        q = v.get("query")
        exprs.append((f"variable {name}", q.get("query") if isinstance(q, dict) else q))

panels = dash.get("panels", [])
check(panels, "the dashboard has panels")
ids = [p.get("id") for p in panels]
check(len(ids) == len(set(ids)) and None not in ids, f"panel ids are unique ({ids})")
for p in panels:
    title = p.get("title", f"panel {p.get('id')}")
    g = p.get("gridPos", {})
    check(all(isinstance(g.get(k), int) for k in "xywh") and g["x"] >= 0 and g["w"] > 0
          and g["x"] + g["w"] <= 24, f"{title}: inside the 24-column grid ({g})")
    check(uses_ds(p), f"{title}: uses the data source variable")
    targets = p.get("targets", [])
    check(targets and all(t.get("expr") and uses_ds(t) for t in targets),
          f"{title}: every query has an expression on the data source variable")
    exprs += [(title, t.get("expr", "")) for t in targets]

used = set()
for where, e in exprs:
    names = set(re.findall(r"\bsakeyd_[a-zA-Z0-9_]+", e or ""))
    used |= names
    unknown = names - written
    check(names and not unknown, f"{where}: metrics the daemon writes ({sorted(names)}"
          + (f"; unknown: {sorted(unknown)})" if unknown else ")"))
for need in ("sakeyd_link_outbound_age_seconds", "sakeyd_link_next_rotation_timestamp_seconds",
             "sakeyd_link_expiry_seconds", "sakeyd_rotations_total", "sakeyd_events_total",
             "sakeyd_xfrm_errors_total"):
    check(need in used, f"a panel shows {need}")

promtool = os.environ.get("PROMTOOL") or (f"{ROOT}/tools/promtool"
                                          if os.access(f"{ROOT}/tools/promtool", os.X_OK)
                                          else shutil.which("promtool"))
if promtool:
    # Each expression as a recording rule: promtool check rules parses it.
    work = tempfile.mkdtemp(prefix="sakeyd-dash-")
    try:
        path = f"{work}/dash.rules.yml"
        with open(path, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (where, e) in enumerate(exprs):
                e = (e or "").replace("$__rate_interval", "5m").replace("$instance", ".*")
                e = e.replace("$link", ".*")
                # Grafana's label_values(SELECTOR, LABEL) of a variable: SELECTOR is PromQL.
                e = re.sub(r"^label_values\((.*),\s*[a-zA-Z_]+\)$", r"\1", e)
                f.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(e)}\n")
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        check(r.returncode == 0, f"every expression is valid PromQL (promtool): "
              f"{(r.stdout + r.stderr).strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
else:
    print("     (promtool not installed: the expressions' PromQL syntax not checked)")
    check(os.environ.get("CI") != "true", "CI has promtool (scripts/deps.sh fetches it)")
check.finish()
