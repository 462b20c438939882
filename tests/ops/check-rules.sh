#!/bin/sh
# SPDX-License-Identifier: ISC
# The Prometheus alerting rules: `promtool check rules` (syntax, PromQL,
# templates) and `promtool test rules` (each alert fires when it should).
#
#   check-rules.sh RULES_DIR
#
# promtool comes with Debian's prometheus package (the whole server, ~96 MB
# installed), which scripts/deps.sh does not install for one lint. Without
# promtool (in PATH or $PROMTOOL) a structural check runs instead (YAML shape,
# the metric names the daemon exports), and the test reports itself skipped
# (77) if that passes: it fails only on a real finding.
set -eu
DIR=$1
RULES="$DIR/sakeyd.rules.yml"
TESTS="$DIR/sakeyd.rules.test.yml"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PROMTOOL:-}" ] && [ -x "$ROOT/tools/promtool" ]; then
	PROMTOOL=$ROOT/tools/promtool
fi
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}

if [ -n "$PROMTOOL" ]; then
	"$PROMTOOL" check rules "$RULES"
	cd "$DIR"
	"$PROMTOOL" test rules "$(basename "$TESTS")"
	exit 0
fi

echo "check-rules: promtool not installed (Debian package prometheus); structural check only"
if [ "${CI:-}" = true ]; then
	echo "check-rules: CI must lint the rules with promtool (scripts/deps.sh fetches it)"
	exit 1
fi
python3 - "$RULES" <<'PY'
import re, sys
try:
    import yaml
except ImportError:
    print("check-rules: python3-yaml missing too; skipped")
    sys.exit(77)
known = {"sakeyd_events_total", "sakeyd_rotations_total", "sakeyd_sa_age_seconds",
         "sakeyd_sa_expiry_seconds", "sakeyd_xfrm_errors_total",
         "sakeyd_last_update_timestamp_seconds"}
doc = yaml.safe_load(open(sys.argv[1]))
bad = []
names = set()
for g in doc["groups"]:
    for r in g["rules"]:
        a = r.get("alert")
        if not a or not r.get("expr") or a in names:
            bad.append("rule without alert/expr or duplicated: %r" % r)
        names.add(a)
        if r.get("labels", {}).get("severity") not in ("warning", "critical"):
            bad.append("%s: severity must be warning or critical" % a)
        if not r.get("annotations", {}).get("summary"):
            bad.append("%s: no summary" % a)
        expr = r["expr"]
        for open_, close in ("()", "[]", "{}"):
            if expr.count(open_) != expr.count(close):
                bad.append("%s: unbalanced %s in %s" % (a, open_ + close, expr))
        for m in re.findall(r"\bsakeyd_[a-z_]+", expr):
            if m not in known:
                bad.append("%s: unknown metric %s" % (a, m))
for b in bad:
    print("check-rules:", b)
sys.exit(1 if bad else 77)
PY
