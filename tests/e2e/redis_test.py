"""Redis for the e2e tests: a redis-server of our own (Debian's, on a free
loopback port in a temp dir, AOF on with fsync always, no RDB snapshots),
its replica, and awaitd's [store] backend = redis config for it. Used by
test_redis*.py and test_metrics.py (test_redis.py re-exports these names)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from awaitd_test import HOST, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """One redis-server of our own: AOF on, fsync always, no RDB snapshots."""

    def __init__(self, replica_of=None):
        self.dir = tempfile.mkdtemp(prefix="awaitd-redis-")
        self.port = free_port()
        self.proc = None
        self.password = None
        self.replica_of = replica_of

    preexec_fn = None  # run in the child before redis-server

    def args(self):
        """redis-server's options after the port, address, directory and persistence."""
        return (["--protected-mode", "yes"] +
                (["--requirepass", self.password] if self.password else []) +
                (["--replicaof", HOST, str(self.replica_of)] if self.replica_of else []))

    def start(self, timeout=10.0):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--daemonize", "no"] + self.args(),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.cmd("PING") == "+PONG":
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.log.flush()
        raise AssertionError("redis-server did not start: %s"
                             % open(os.path.join(self.dir, "redis.log")).read()[-2000:])

    def cmd(self, *args, timeout=5.0):
        """One command (RESP); the first line of the answer, or for a bulk string its value."""
        req = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in
            (x if isinstance(x, bytes) else str(x).encode() for x in args))
        if self.password:
            req = (b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(self.password), self.password.encode())
                   + req)
        with socket.create_connection((HOST, self.port), timeout=timeout) as s:
            s.sendall(req)
            if self.password:
                buf = b""
                while b"\r\n" not in buf:
                    buf += s.recv(1)
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            line = buf.split(b"\r\n", 1)[0].decode()
            if line.startswith("$") and line != "$-1":
                n = int(line[1:])
                rest = buf.split(b"\r\n", 1)[1]
                while len(rest) < n + 2:
                    rest += s.recv(65536)
                return rest[:n].decode()
            return line

    def info(self, section="replication"):
        """INFO section's text."""
        with socket.create_connection((HOST, self.port), timeout=5) as s:
            s.sendall(b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section.encode()))
            time.sleep(0.1)
            return s.recv(65536).decode()

    def start_replica(self, timeout=10.0):
        """A replica of this server, started and synced (its cleanup is the caller's)."""
        replica = RedisServer(replica_of=self.port).start()
        deadline = time.monotonic() + timeout
        while "master_link_status:up" not in replica.info():
            if time.monotonic() >= deadline:
                replica.cleanup()
                raise AssertionError("the replica did not sync")
            time.sleep(0.1)
        return replica

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.log.close()

    def stop(self):
        self.kill(signal.SIGTERM)

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_config(port, extra=None):
    cfg = {"store": {"backend": "redis"},
           "redis": {"nodes": "%s:%d" % (HOST, port), "command_timeout": "2s",
                     "connect_timeout": "1s"}}
    for sec, keys in (extra or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    return cfg


class RedisProxy:
    """A TCP relay between awaitd and a RedisServer that can lose the answer to a timer's put
    after Redis has applied it (what a redis-server killed between its AOF write and its
    reply does, deterministically). It counts the timers' puts (the requests that carry an
    "awaitd-timer:ID:TICK" idempotency key) on every connection; for the n-th put in drop
    (1-based), it passes the request on, forwards nothing more to awaitd on that connection,
    waits until Redis holds the put's key (so the put was applied), then closes every
    connection it relays and, for outage seconds, closes each new one at once (awaitd sees
    Redis gone, then back). dropped lists the "ID:TICK" of each put whose answer was lost."""

    PUT_KEY = re.compile(rb"\$\d+\r\nawaitd-timer:(\d+:\d+)\r\n")  # aw_put's last argument

    def __init__(self, redis, drop=(), outage=0.6):
        self.redis, self.drop, self.outage = redis, set(drop), outage
        self.port = free_port()
        self.puts, self.dropped = 0, []
        self.lock = threading.Lock()
        self.conns = []           # [client, upstream] pairs being relayed
        self.refuse_until = 0.0
        self.closed = False
        self.error = None         # what went wrong in the relay's threads
        self.listener = socket.create_server((HOST, self.port), reuse_port=False)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                client.close()
                continue
            try:
                up = socket.create_connection((HOST, self.redis.port), timeout=5)
            except OSError:
                client.close()
                continue
            pair = [client, up]
            with self.lock:
                self.conns.append(pair)
            threading.Thread(target=self._up, args=(pair,), daemon=True).start()
            threading.Thread(target=self._down, args=(pair,), daemon=True).start()

    def _up(self, pair):
        """awaitd -> Redis, counting the timers' puts."""
        client, up = pair
        tail = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                seen = tail + data
                lost = None
                for m in self.PUT_KEY.finditer(seen):
                    if m.end() <= len(tail):
                        continue  # counted in the last read
                    with self.lock:
                        self.puts += 1
                        if self.puts in self.drop and lost is None:
                            lost = m.group(1).decode()
                tail = seen[-256:]
                if lost is not None:
                    pair.append("mute")  # nothing more goes back on this connection
                up.sendall(data)
                if lost is not None:
                    self._lose(lost)
                    break
        except OSError:
            pass
        self._close(pair)

    def _down(self, pair):
        """Redis -> awaitd, until the connection is muted."""
        client, up = pair
        try:
            while True:
                data = up.recv(65536)
                if not data or "mute" in pair:
                    break
                client.sendall(data)
        except OSError:
            pass
        self._close(pair)

    def _lose(self, key):
        """The put with idempotency key awaitd-timer:KEY went on and its answer is held back:
        once Redis has applied it, every connection goes and new ones are refused a while."""
        deadline = time.monotonic() + 5
        while self.redis.cmd("KEYS", "*:k:*:awaitd-timer:" + key) != "*1":
            if time.monotonic() > deadline:
                self.error = "Redis never applied the put of %s" % key
                break
            time.sleep(0.005)
        with self.lock:
            self.dropped.append(key)
            self.refuse_until = time.monotonic() + self.outage
            pairs, self.conns = self.conns, []
        for p in pairs:
            self._close(p)

    @staticmethod
    def _close(pair):
        for s in pair[:2]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stop(self):
        self.closed = True
        self.listener.close()
        with self.lock:
            pairs, self.conns = self.conns, []
        for p in pairs:
            self._close(p)
