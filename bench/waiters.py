"""Memory per waiting reserve: N keep-alive connections are opened and left
idle, the server's VmRSS is read, then every connection sends a long-poll
reserve on an empty queue and VmRSS is read again once the server reports N
getters. Prints one JSON object: the RSS before and after, the getters
seen, and the bytes per waiter beyond an idle connection.

    python3 bench/waiters.py PORT PID N
"""
import asyncio
import json
import resource
import sys
import time
import urllib.request


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def getters(port):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()
    n = 0
    for line in text.decode().splitlines():
        # the local backend's gauge per queue; the Redis backend's per node
        if line.startswith("awaitd_queue_getters{") or (
                line.startswith("awaitd_queue_waiting{") and 'kind="reserve"' in line):
            n += int(float(line.split()[-1]))
    return n


async def main(port, pid, n):
    urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/queues/w" % port,
                                                  method="PUT"), timeout=10)
    conns = []
    for _ in range(n):
        conns.append(await asyncio.open_connection("127.0.0.1", port))
    await asyncio.sleep(1)
    before = rss_kb(pid)
    for _, w in conns:
        w.write(b"POST /queues/w/reserve?wait=60 HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n")
    await asyncio.gather(*(w.drain() for _, w in conns))
    deadline = time.monotonic() + 20
    seen = 0
    while time.monotonic() < deadline:
        seen = await asyncio.get_running_loop().run_in_executor(None, getters, port)
        if seen >= n:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)
    after = rss_kb(pid)
    for _, w in conns:
        w.close()
    print(json.dumps({"waiters": n, "getters_seen": seen, "rss_before_kb": before,
                      "rss_after_kb": after, "bytes_per_waiter": (after - before) * 1024.0 / n}))


if __name__ == "__main__":
    port, pid, n = (int(a) for a in sys.argv[1:4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 500), hard))
    asyncio.run(main(port, pid, n))
