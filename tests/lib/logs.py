# SPDX-License-Identifier: ISC
"""Reading the daemon's log (or any text file) while it grows."""
import datetime
import os
import re


def read(path, start=0):
    """The file's text from offset start."""
    with open(path, errors="replace") as f:
        f.seek(start)
        return f.read()


def log_len(path):
    """The file's size: an offset to read from later (a mark)."""
    return os.path.getsize(path)


def log_has(path, pattern, start=0):
    """The regular expression pattern matches the file's text from offset start."""
    return re.search(pattern, read(path, start)) is not None


STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z ")


def stamped(text):
    """[(Unix time, line)] of the daemon's log lines in text that start with its UTC time
    stamp (2026-01-02T03:04:05.678Z); other lines (run markers, sanitizer reports) are left
    out."""
    out = []
    for line in text.splitlines():
        m = STAMP.match(line)
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f" if "." in
                                           m.group(1) else "%Y-%m-%dT%H:%M:%S")
            out.append((t.replace(tzinfo=datetime.timezone.utc).timestamp(), line))
    return out


def started(path, start=0):
    """The daemon logged ready (its first pass applied) and, on PF_KEY, its registration for
    EXPIRE and ACQUIRE is done: SADB_REGISTER comes after the first pass and holds the
    kernel's configuration lock for its algorithm probe (seconds on a fresh boot), so an
    `ip xfrm` command run before it waits, and an EXPIRE sent before it reaches no one."""
    text = read(path, start)
    return "ready: " in text and ("registering for EXPIRE" not in text or
                                  "registered for EXPIRE" in text)


def logged_at(path, pattern, start=0):
    """Unix time of the first time-stamped log line from offset start that matches pattern,
    or None."""
    rx = re.compile(pattern)
    return next((t for t, line in stamped(read(path, start)) if rx.search(line)), None)
