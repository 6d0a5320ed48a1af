"""Every curl example in README.md, docs/QUEUES.md and docs/TIMERS.md runs as
written (issue 16, finding 11: README's queue example posted @mail.eml, which
is not shipped, so curl warned and stored an empty job).

Each document's examples run in order, with the real curl through bash,
against a daemon of their own started fresh (an empty journal: the ids the
examples name are those of a fresh start), from an empty directory (so a
file the example needs but the docs do not ship is missing here too).
localhost:8080 becomes the daemon's port; nothing else in the command
changes. Each must exit 0, print no curl warning, and get a status below
400 for every request it makes.

An example that must not run here (one needing a token, say) says so on its
own line with a trailing comment containing "no-doc-test: <why>"; the test
lists them, and there are none today.
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from awaitd_test import SRCDIR, Daemon

DOCS = {"README.md": 12, "docs/QUEUES.md": 10, "docs/TIMERS.md": 6}  # doc -> at least this many
SKIP_MARK = "no-doc-test:"
STATUS = "DOCTEST_STATUS="
# The command stays as written; curl itself gets a status line, a time
# bound and no progress meter (warnings and errors still show).
WRAPPER = ("curl() { command curl --no-progress-meter --max-time 30 -w '\\n%s%%{http_code}\\n' "
           "\"$@\"; }\n" % STATUS)


def examples(path):
    """[(line number, command, skip reason or None)]: the lines of the sh
    code blocks of path that run curl, with backslash continuations joined."""
    out = []
    lang = None
    pending, start = "", 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            s = line.rstrip("\n")
            if lang is None:
                if s.startswith("```"):
                    lang = s[3:].strip()
                continue
            if s.strip() == "```":
                lang = None
                continue
            if lang not in ("sh", "bash", "shell"):
                continue
            if not pending:
                start = n
            if s.endswith("\\"):
                pending += s[:-1] + " "
                continue
            cmd, pending = pending + s, ""
            if re.search(r"(^|[|;&]\s*)curl\s", cmd.strip()):
                skip = cmd.split(SKIP_MARK, 1)[1].strip() if SKIP_MARK in cmd else None
                out.append((start, cmd, skip))
    return out


class DocExamplesTest(unittest.TestCase):

    def run_doc(self, doc, at_least):
        path = os.path.join(SRCDIR, doc)
        found = examples(path)
        self.assertGreaterEqual(len(found), at_least,
                                "%s: only %d curl examples found; the extraction broke?"
                                % (doc, len(found)))
        d = Daemon()
        d.start()
        self.addCleanup(d.cleanup)
        self.addCleanup(d._kill)
        cwd = tempfile.mkdtemp(prefix="awaitd-docs-")
        self.addCleanup(shutil.rmtree, cwd, True)
        ran = 0
        for line, cmd, skip in found:
            if skip is not None:
                print("[%s:%d not run: %s]" % (doc, line, skip), end=" ")
                continue
            self.assertIn("localhost:8080", cmd, "%s:%d: not aimed at the daemon" % (doc, line))
            run = cmd.replace("localhost:8080", "127.0.0.1:%d" % d.port)
            p = subprocess.run(["bash", "-c", WRAPPER + run], cwd=cwd, capture_output=True,
                               text=True, timeout=60)
            where = "%s:%d: %s\nstdout: %s\nstderr: %s" % (doc, line, cmd, p.stdout[-2000:],
                                                          p.stderr[-2000:])
            self.assertEqual(p.returncode, 0, where)
            self.assertNotIn("Warning", p.stderr, where)
            statuses = [int(x) for x in re.findall(STATUS + r"(\d+)", p.stdout)]
            self.assertTrue(statuses, where)
            for st in statuses:
                self.assertTrue(200 <= st < 400, "status %d: %s" % (st, where))
            ran += 1
        self.assertGreaterEqual(ran, at_least)
        d.stop()

    def test_readme(self):
        self.run_doc("README.md", DOCS["README.md"])

    def test_queues(self):
        self.run_doc("docs/QUEUES.md", DOCS["docs/QUEUES.md"])

    def test_timers(self):
        self.run_doc("docs/TIMERS.md", DOCS["docs/TIMERS.md"])

    def test_extraction(self):
        """The extractor itself: sh blocks only, continuations joined, marks read."""
        tmp = tempfile.mkdtemp(prefix="awaitd-docs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        md = os.path.join(tmp, "x.md")
        with open(md, "w") as f:
            f.write("text curl localhost:8080/no\n```json\ncurl x\n```\n```sh\n"
                    "curl -s localhost:8080/a   # one\n"
                    "echo no curl here\n"
                    "curl -X POST \\\n  localhost:8080/b\n"
                    "printf x | curl --data-binary @- localhost:8080/c\n"
                    "curl -H 'Authorization: Bearer T' localhost:8080/d  # no-doc-test: needs a token\n"
                    "```\n")
        got = examples(md)
        self.assertEqual([(n, s) for n, _c, s in got],
                         [(6, None), (8, None), (10, None), (11, "needs a token")])
        self.assertIn("localhost:8080/b", got[1][1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
