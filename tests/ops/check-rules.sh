#!/bin/sh
# SPDX-License-Identifier: ISC
# The Prometheus alerting rules: `promtool check rules` (syntax, PromQL,
# templates) and `promtool test rules` (each alert fires when it should).
#
#   check-rules.sh RULES_DIR
#
# promtool comes with Debian's prometheus package (the whole server, ~96 MB
# installed); scripts/deps.sh unpacks only promtool into tools/. A structural
# check always runs too (YAML shape, and every sakeyd_ metric an expr uses is
# one monitor/metrics.c writes); without promtool (in PATH, tools/ or
# $PROMTOOL) it is all there is, and the test reports itself skipped (77) if
# it passes: it fails only on a real finding.
set -eu
DIR=$1
RULES="$DIR/sakeyd.rules.yml"
TESTS="$DIR/sakeyd.rules.test.yml"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PROMTOOL:-}" ] && [ -x "$ROOT/tools/promtool" ]; then
	PROMTOOL=$ROOT/tools/promtool
fi
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}

# What the structural check exits with when it finds nothing: 0 after promtool
# passed, 77 (skipped) when it is all there is.
PASS=77
if [ -n "$PROMTOOL" ]; then
	"$PROMTOOL" check rules "$RULES"
	(cd "$DIR" && "$PROMTOOL" test rules "$(basename "$TESTS")")
	PASS=0
else
	echo "check-rules: promtool not installed (Debian package prometheus); structural check only"
	if [ "${CI:-}" = true ]; then
		echo "check-rules: CI must lint the rules with promtool (scripts/deps.sh fetches it)"
		exit 1
	fi
fi
# promtool knows no metric names: a sakeyd_ name in an expr that the daemon
# does not write (a typo, a renamed metric) is a rule that never fires.
python3 - "$RULES" "$ROOT/monitor/metrics.c" "$PASS" <<'PY'
import re, sys
try:
    import yaml
except ImportError:
    print("check-rules: python3-yaml missing; metric names not checked")
    sys.exit(int(sys.argv[3]))
# The families monitor/metrics.c writes (each has its family() call there).
src = open(sys.argv[2]).read()
known = set(re.findall(r'family\(\s*&?o,\s*"(sakeyd_[a-z_]+)"', src))
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
sys.exit(1 if bad else int(sys.argv[3]))
PY
