# SPDX-License-Identifier: ISC
"""The pass/fail record every Python test driver keeps.

    check = Checks()
    check(cond, "what was expected")   # prints "ok   ..." or "FAIL ...", returns cond
    check.finish()                     # prints the counts, exits 1 if anything failed
"""
import sys


class Checks:
    def __init__(self, prefix=""):
        self.failures, self.passes = [], []
        self.prefix = prefix

    def __call__(self, cond, what):
        print(self.prefix + ("ok   " if cond else "FAIL ") + what, flush=True)
        (self.passes if cond else self.failures).append(what)
        return cond

    def summary(self):
        return f"{len(self.passes)} passed, {len(self.failures)} failed"

    def finish(self):
        print(self.summary(), flush=True)
        sys.exit(1 if self.failures else 0)
