# SPDX-License-Identifier: ISC
"""Reading the daemon's log (or any text file) while it grows."""
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
