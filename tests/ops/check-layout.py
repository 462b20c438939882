#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The layout's rules (DESIGN.md "Layout", STYLE.md rule 1), checked on the sources.

- Dependencies point one way: a file includes only headers of its own folder
  or of a folder below it, in the order LAYERS gives; folders on one level
  (svc/daemon and svc/sactl) do not include each other.
- Only store/ includes sqlite3.h; only svc/ includes uv.h; the core (conf,
  rotate, store, monitor) reads no clock and makes no system call of the
  running system (time(), clock_gettime, sockets, processes).
- No circle between units (a unit is x.c with its x.h, as a call from
  x.c to what x.h declares ties them; a header without a .c is an interface).
- Each source file opens with an SPDX line and a one-sentence purpose.

Usage: check-layout.py SOURCE_ROOT
"""
import os
import re
import sys

# Lowest first; one entry a level, a level may hold several folders.
LAYERS = [
    ["conf"],
    ["rotate"],
    ["store"],
    ["monitor"],
    ["svc/base"],
    ["svc/kernel"],
    ["svc/ctl"],
    ["svc/daemon", "svc/sactl"],
]
CORE = ["conf", "rotate", "store", "monitor"]
# What the core must not call: the running system's clock, sockets, processes.
CORE_FORBIDDEN = re.compile(
    r"\b(time|clock_gettime|gettimeofday|socket|connect|bind|fork|execve?|posix_spawn|"
    r"uv_\w+|sleep|usleep|nanosleep)\s*\(")
INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]', re.M)


def folder_of(path):
    for level, folders in enumerate(LAYERS):
        for f in folders:
            if path.startswith(f + "/") and "/" not in path[len(f) + 1:]:
                return f, level
    return None, None


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def main():
    root = sys.argv[1]
    problems = []
    files = {}
    for folders in LAYERS:
        for f in folders:
            d = os.path.join(root, f)
            if not os.path.isdir(d):
                problems.append("%s: the folder is missing" % f)
                continue
            for name in sorted(os.listdir(d)):
                if name.endswith((".c", ".h")):
                    rel = f + "/" + name
                    with open(os.path.join(root, rel)) as fh:
                        files[rel] = fh.read()
    stray = []
    for dirpath, _, names in os.walk(os.path.join(root, "svc")):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if name.endswith((".c", ".h")) and rel not in files:
                stray.append(rel)
    for rel in stray:
        problems.append("%s: in no folder of the layout" % rel)

    graph = {}
    for rel, text in files.items():
        folder, level = folder_of(rel)
        lines = text.split("\n")
        if not lines[0].startswith("/* SPDX-License-Identifier:"):
            problems.append("%s:1: no SPDX line" % rel)
        if len(lines) < 2 or not lines[1].startswith("/*"):
            problems.append("%s:2: no comment saying what the file is for" % rel)
        graph[rel] = []
        for m in INCLUDE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            kind, target = m.group(1), m.group(2)
            if kind == "<":
                if target == "sqlite3.h" and folder != "store":
                    problems.append("%s:%d: sqlite3.h outside store/" % (rel, line))
                if target == "uv.h" and not folder.startswith("svc"):
                    problems.append("%s:%d: uv.h outside svc/" % (rel, line))
                continue
            tfolder, tlevel = folder_of(target)
            if tfolder is None:
                problems.append("%s:%d: includes %s, in no folder of the layout" %
                                (rel, line, target))
                continue
            if target not in files:
                problems.append("%s:%d: includes %s, which does not exist" % (rel, line, target))
                continue
            graph[rel].append(target)
            if tlevel > level:
                problems.append("%s:%d: includes %s, from a folder above its own (%s)" %
                                (rel, line, target, tfolder))
            elif tlevel == level and tfolder != folder:
                problems.append("%s:%d: includes %s, from %s, a folder beside its own" %
                                (rel, line, target, tfolder))
        if folder in CORE:
            body = strip_comments(text)
            for m in CORE_FORBIDDEN.finditer(body):
                line = body.count("\n", 0, m.start()) + 1
                problems.append("%s:%d: %s() in the core, which takes now and data as "
                                "arguments" % (rel, line, m.group(1)))

    # Circles: a depth-first search over the units (x.c and x.h are one). A
    # header with no .c of its own is an interface (struct daemon_port,
    # the channel's backend ops): what it includes are the types it names,
    # not calls, so its own includes tie nothing.
    units = {}
    for rel, targets in graph.items():
        unit = units.setdefault(rel[:-2], set())
        if rel.endswith(".h") and rel[:-2] + ".c" not in files:
            continue
        unit.update(t[:-2] for t in targets if t[:-2] != rel[:-2])
    graph = {u: sorted(v) for u, v in units.items()}
    state = {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                problems.append("circle of units: " +
                                " -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif not state.get(nxt):
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [])

    for p in problems:
        print("layout: " + p)
    print("layout: %d files in %d folders, %d ties between units: %s" %
          (len(files), sum(len(f) for f in LAYERS), sum(len(v) for v in graph.values()),
           "%d problem(s)" % len(problems) if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
