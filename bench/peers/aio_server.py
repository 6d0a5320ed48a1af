#!/usr/bin/env python3
"""The asyncio peer of bench/claims.sh: aiohttp's web server on asyncio's
own event loop, or on uvloop's (libuv) with --loop uvloop.

    aio_server.py --port PORT [--loop asyncio|uvloop] [--backlog N]

    GET /get       200 {"ok":true}
    GET /delay/S   200 {"ok":true} after S seconds (asyncio.sleep, at most 10)

Listens on 127.0.0.1 only, no access log (as nginx's access_log off).
Stops on SIGTERM or SIGINT.
"""
import argparse
import asyncio

from aiohttp import web

OK = b'{"ok":true}\n'


async def get(_request):
    return web.Response(body=OK, content_type="application/json")


async def delay(request):
    try:
        s = float(request.match_info["s"])
    except ValueError:
        raise web.HTTPBadRequest(text='{"error":"bad delay"}\n', content_type="application/json")
    if not 0 <= s <= 10:
        raise web.HTTPBadRequest(text='{"error":"bad delay"}\n', content_type="application/json")
    await asyncio.sleep(s)
    return web.Response(body=OK, content_type="application/json")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--backlog", type=int, default=4096)
    a = p.parse_args()
    if a.loop == "uvloop":
        import uvloop
        uvloop.install()
    app = web.Application()
    app.router.add_get("/get", get)
    app.router.add_get("/delay/{s}", delay)
    web.run_app(app, host="127.0.0.1", port=a.port, backlog=a.backlog,
                access_log=None, print=None, keepalive_timeout=75)


if __name__ == "__main__":
    main()
