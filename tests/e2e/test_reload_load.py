"""Reload under load (the systemd issue): while awaitload keeps 1,000
keep-alive connections busy, SIGHUP with a changed config applies and no
request fails; SIGHUP with a broken config keeps the daemon serving on the
old one, also without a failed request."""

import json
import os
import signal
import subprocess
import time
import unittest

from awaitd_test import SRCDIR, Daemon, raise_nofile_limit

AWAITLOAD = os.environ.get("AWAITLOAD") or os.path.join(
    os.path.dirname(os.environ.get("AWAITD") or os.path.join(SRCDIR, "src", "awaitd")), "awaitload")


class ReloadUnderLoadTest(unittest.TestCase):
    def test_reload_with_1000_busy_connections(self):
        raise_nofile_limit()
        d = Daemon({"server": {"max_connections": "4000", "log_level": "info"}})
        d.start()
        try:
            load = subprocess.Popen(
                [AWAITLOAD, "-c", "1000", "-d", "6s", "--json", d.url("/get")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(1.5)
            text = open(d.conf_path).read()
            # A valid change (a new timeout and log level), twice, then a broken file.
            for i, new in enumerate(("keepalive_timeout = 30s", "keepalive_timeout = 40s")):
                with open(d.conf_path, "w") as f:
                    f.write(text.replace("[server]\n", "[server]\n%s\n" % new, 1))
                d.signal(signal.SIGHUP)
                time.sleep(1.0)
            with open(d.conf_path, "w") as f:
                f.write(text + "\n[server]\nbogus = 1\n")
            d.signal(signal.SIGHUP)
            time.sleep(1.0)
            out, err = load.communicate(timeout=30)
            self.assertEqual(load.returncode, 0, err.decode())
            res = json.loads(out)
            self.assertGreater(res["requests"], 1000)
            self.assertEqual(sum(res["errors"].values()), 0, res)
            self.assertEqual(res["requests"], res["status"]["2xx"], res)
            log = d.stderr()
            self.assertEqual(log.count("configuration reloaded"), 2, log)
            self.assertIn("reload failed, the running configuration stays", log)
            self.assertEqual(d.http("GET", "/health").status, 200)
            with open(d.conf_path, "w") as f:
                f.write(text)
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
