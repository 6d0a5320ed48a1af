#!/usr/bin/env python3
"""[server] loopback_reserve: the last slots of max_connections are kept for
loopback clients, so a remote client that takes every other connection
cannot lock out a local health check (issue 12, finding 6).

A remote client needs an address that is not loopback. The test runs itself
in a private network namespace (unshare -n, root) with a dummy interface
holding 192.0.2.1 (TEST-NET-1); nothing leaves the namespace.
"""
import os
import socket
import subprocess
import sys
import time
import unittest

REMOTE = "192.0.2.1"

if os.environ.get("AWAITD_NETNS") != "1":
    setup = ("ip link set lo up && "
             "ip addr add %s/32 dev lo && exec \"$0\" \"$@\"" % REMOTE)
    env = dict(os.environ, AWAITD_NETNS="1")
    try:
        sys.exit(subprocess.call(["unshare", "-n", "sh", "-c", setup, sys.executable]
                                 + sys.argv, env=env))
    except OSError as e:
        sys.exit("cannot run in a private network namespace (unshare -n, needs root): %s" % e)

import tempfile  # noqa: E402

from awaitd_test import (AWAITD, HOST, Daemon, DaemonTestCase, parse_metrics,  # noqa: E402
                         parse_responses, request_from)


class LoopbackReserveTest(DaemonTestCase):
    MAX, RESERVE = 6, 2
    config = {"server": {"max_connections": str(MAX), "loopback_reserve": str(RESERVE)}}

    def hold(self, source):
        """A connection from source busy with a /delay: it holds a slot."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.bind((source, 0))
        s.connect((HOST, self.d.port))
        s.sendall(b"GET /delay/8 HTTP/1.1\r\nHost: t\r\n\r\n")
        return s

    def request_from(self, source, path="/health"):
        """The answers to GET path on a new connection from source."""
        return parse_responses(request_from(source, self.d.port, path))

    def open_conns(self):
        """awaitd_connections_open, asked over loopback (not counting that request)."""
        rs = self.request_from(HOST, "/metrics")
        self.assertEqual([r.status for r in rs], [200])
        return parse_metrics(rs[0].body.decode())["awaitd_connections_open"] - 1

    def wait_open(self, n):
        deadline = time.monotonic() + 5
        while self.open_conns() != n:
            self.assertLess(time.monotonic(), deadline, "connections_open never reached %d" % n)
            time.sleep(0.05)

    def test_remote_clients_leave_the_reserve(self):
        held = []
        try:
            # A remote client takes every slot it may: max_connections - reserve.
            for _ in range(self.MAX - self.RESERVE):
                held.append(self.hold(REMOTE))
            self.wait_open(self.MAX - self.RESERVE)
            rs = self.request_from(REMOTE)
            self.assertEqual(len(rs), 1, rs)
            err = self.assertJsonError(rs[0], 503)
            self.assertIn("max_connections", err["error"])
            # A local health check still gets in, on the reserve.
            rs = self.request_from(HOST)
            self.assertEqual([r.status for r in rs], [200])
            # The reserve holds loopback clients up to max_connections, no more.
            for _ in range(self.RESERVE):
                held.append(self.hold(HOST))
            deadline = time.monotonic() + 5
            while True:
                rs = self.request_from(HOST)
                if rs and rs[0].status == 503:
                    break
                self.assertLess(time.monotonic(), deadline, "loopback never refused: %r" % rs)
                time.sleep(0.05)
        finally:
            for s in held:
                s.close()

    def test_reserve_must_leave_room(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("[server]\nmax_connections = 4\nloopback_reserve = 4\n")
            f.flush()
            out = subprocess.run([AWAITD, "-t", "-c", f.name], stdin=subprocess.DEVNULL,
                                 env=Daemon._env(), capture_output=True, text=True, timeout=10)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("loopback_reserve", out.stderr)
        self.assertIn("below max_connections", out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
