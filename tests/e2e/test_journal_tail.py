"""Journal tail rules (issue 12, finding 4), with the real daemon and the real
awaitd-journal tool on journals it wrote.

A crash can only damage the last batch written (a prefix of it, or its pages
lost as zeros): that is cut with a warning, and nothing acknowledged comes
back. Anything else is corruption: start is refused, naming the file, the
offset and what -r does. A damaged file header is refused with advice to use
-r, and -r repairs it. awaitd-journal prints and checks a journal.
"""

import os
import re
import struct
import subprocess
import unittest

from awaitd_test import AWAITD, SRCDIR
from test_queue_crash import Node

HEADER = 16
BATCH_HEADER = 25
TOOL = os.path.join(os.path.dirname(AWAITD), "awaitd-journal")


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def batch_header(seq, length):
    body = bytes([0xF0]) + struct.pack("<QQ", seq, length)
    return struct.pack("<II", 16, crc32c(body)) + body


def batches(data):
    """[(offset, seq, length, [record offsets])] of a clean version 2 journal."""
    out, pos = [], HEADER
    while pos < len(data):
        n, _crc = struct.unpack_from("<II", data, pos)
        assert n == 16 and data[pos + 8] == 0xF0, "no batch header at %d" % pos
        seq, length = struct.unpack_from("<QQ", data, pos + 9)
        recs, p, end = [], pos + BATCH_HEADER, pos + BATCH_HEADER + length
        while p < end:
            recs.append(p)
            p += 9 + struct.unpack_from("<I", data, p)[0]
        out.append((pos, seq, length, recs))
        pos = end
    return out


class JournalTailTest(unittest.TestCase):

    def setUp(self):
        self.n = Node("always")
        self.n.start()
        n = self.n
        self.assertEqual(n.http("PUT", "/queues/t").status, 201)
        # One batch per request: the client waits for each answer.
        self.ids = []
        for i in range(40):
            r = n.http("POST", "/queues/t/jobs", body=b"job-%02d-" % i + b"x" * 60)
            self.assertEqual(r.status, 201, r)
            self.ids.append(r.json()["id"])
        self.acked = set()
        for _ in range(20):
            r = n.http("POST", "/queues/t/reserve?wait=0&lease=600")
            self.assertEqual(r.status, 200, r)
            jid = int(r.header("Job-Id"))
            a = n.http("POST", "/queues/t/jobs/%d/ack?attempt=%s" % (jid, r.header("Job-Attempt")))
            self.assertEqual(a.status, 200, a)
            self.acked.add(jid)
        n.term()
        with open(n.journal, "rb") as fh:
            self.clean = fh.read()
        self.batches = batches(self.clean)
        self.assertGreater(len(self.batches), 50)

    def tearDown(self):
        self.n.cleanup()

    def write(self, data):
        with open(self.n.journal, "wb") as fh:
            fh.write(data)

    def refused(self, data, offset):
        self.write(data)
        rc, text = self.n.run_refused()
        self.assertNotEqual(rc, 0, "awaitd started on a corrupt journal:\n%s" % text)
        self.assertIn(self.n.journal, text, text)
        self.assertIn("offset %d" % offset, text, text)
        self.assertIn("-r", text, text)
        with open(self.n.journal, "rb") as fh:
            self.assertEqual(fh.read(), data, "a refused start changed the journal")
        return text

    def tool(self, *args):
        p = subprocess.run([TOOL] + list(args) + [self.n.journal], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def live_ids(self):
        st = self.n.http("GET", "/queues/t").json()
        got = set()
        for jid in self.ids:
            if self.n.http("GET", "/queues/t/jobs/%d" % jid).status == 200:
                got.add(jid)
        return st, got

    def test_zeroed_tail_over_several_batches_refused(self):
        # The last 1,000 bytes zeroed, starting inside a batch: several batches.
        data = bytearray(self.clean)
        start = len(data) - 1000
        first = max(b for b in self.batches if b[0] <= start)
        if start - first[0] < BATCH_HEADER + 3:
            start = first[0] + BATCH_HEADER + 3  # inside its first record
        data[start:] = bytes(len(data) - start)
        self.assertGreater(sum(1 for b in self.batches if b[0] >= start), 3)
        rec = max(r for r in first[3] if r <= start)
        text = self.refused(bytes(data), rec)
        self.assertIn("awaitd -r cuts the journal at offset %d" % first[0], text)
        rc, out = self.tool("--check")
        self.assertEqual(rc, 1, out)
        self.assertIn("CORRUPT at offset %d" % rec, out)

    def test_flipped_byte_in_a_complete_record_refused(self):
        for which in (len(self.batches) // 2, len(self.batches) - 1):  # middle, and the last
            with self.subTest(batch=which):
                off, _seq, _len, recs = self.batches[which]
                data = bytearray(self.clean)
                data[recs[0] + 12] ^= 0x01
                self.refused(bytes(data), recs[0])
                rc, out = self.tool()
                self.assertEqual(rc, 1, out)
                self.assertIn("CORRUPT at offset %d" % recs[0], out)

    def test_torn_final_batch_cut_nothing_acked_returns(self):
        last = self.batches[-1]
        # A batch that was being written when the machine stopped: a copy of
        # the last one under the next sequence number, cut in its middle.
        body = self.clean[last[0] + BATCH_HEADER:last[0] + BATCH_HEADER + last[2]]
        torn = batch_header(last[1] + 1, len(body) + 200) + body
        for cut in (3, BATCH_HEADER + 4, len(torn) - 1):
            with self.subTest(cut=cut):
                self.write(self.clean + torn[:cut])
                rc, out = self.tool("--check")
                self.assertEqual(rc, 0, out)
                self.assertIn("torn last batch at offset %d" % len(self.clean), out)
                self.n.start()
                text = self.n.d.stderr()
                self.assertRegex(text, r"torn last batch at offset %d" % len(self.clean), text)
                st, got = self.live_ids()
                self.assertEqual(got, set(self.ids) - self.acked)
                self.assertEqual(st["size"], len(self.ids) - len(self.acked), st)
                self.n.term()
                with open(self.n.journal, "rb") as fh:
                    self.assertEqual(fh.read(), self.clean, "not cut exactly at the torn batch")

    def test_damaged_header_repaired_by_r(self):
        data = bytearray(self.clean)
        data[0] ^= 0x20
        self.write(bytes(data))
        rc, text = self.n.run_refused()
        self.assertNotEqual(rc, 0, text)
        self.assertIn("-r rewrites the header", text)
        self.assertIn("offset 0", text)
        rc, out = self.tool()
        self.assertEqual(rc, 1, out)
        self.assertIn("BAD HEADER", out)
        p = subprocess.Popen([AWAITD, "-r", "-c", self.n.d.conf_path], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.n.tmp)
        try:
            import time
            deadline = time.monotonic() + 10
            while True:
                if p.poll() is not None:
                    self.fail("awaitd -r exited %r: %r" % (p.returncode, p.stdout.read()))
                try:
                    if self.n.http("GET", "/health", timeout=1).status == 200:
                        break
                except OSError:
                    pass
                self.assertLess(time.monotonic(), deadline, "awaitd -r did not start")
                time.sleep(0.05)
            st, got = self.live_ids()
            self.assertEqual(got, set(self.ids) - self.acked)
        finally:
            p.terminate()
            out, _ = p.communicate(timeout=15)
        self.assertEqual(p.returncode, 0, out)
        self.assertIn(b"header rewritten", out)
        with open(self.n.journal + ".damaged-0", "rb") as fh:
            self.assertEqual(fh.read(), bytes(data), "the original was not kept")
        rc, out = self.tool("--check")
        self.assertEqual(rc, 0, out)

    def test_tool_prints_records(self):
        rc, out = self.tool()
        self.assertEqual(rc, 0, out)
        self.assertIn("awaitd journal version 2", out)
        self.assertEqual(len(re.findall(r"(?m)^batch seq \d+ at \d+", out)), len(self.batches))
        puts = re.findall(r"(?m)^\s+\d+\s+job\.put\s+queue=t id=(\d+) payload=67", out)
        self.assertEqual(sorted(int(x) for x in puts), sorted(self.ids))
        self.assertEqual(len(re.findall(r"(?m)^\s+\d+\s+job\.ack\s+queue=t id=", out)),
                         len(self.acked))
        self.assertIn("clean: %d batches" % len(self.batches), out)
        rc, out = self.tool("-q")
        self.assertEqual((rc, out), (0, ""))
        rc, out = self.tool("--bogus")
        self.assertEqual(rc, 2, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
