"""A webhook receiver in its own process (`python -m tests.faults.hookd PORT`).

Load tests drive hundreds of HTTPS calls from the pytest process; a receiver sharing that
process's GIL answers late, and the worker (whose webhook timeout is short in tests) times out
on deliveries the receiver then records as accepted. In its own process it answers at once.

Control, on the same port:
- `PUT /_policy` {"default": [status, delay_s], "paths": {"/hooks/x": [status, delay_s]}}
- `GET /_hits?since=N`: answered requests from index N on, in arrival order, each
  {"path", "headers", "body", "arrived", "answered", "status"} (times: time.time())
- `GET /_inflight`: requests that arrived and are not answered yet
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from aiohttp import web

HITS = web.AppKey("hits", list)
INFLIGHT = web.AppKey("inflight", dict)
POLICY = web.AppKey("policy", dict)


async def hook(request: web.Request) -> web.Response:
    body = await request.read()
    hit: dict[str, Any] = {
        "path": request.path,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": body.decode("utf-8", "replace"),
        "arrived": time.time(),
    }
    inflight = request.app[INFLIGHT]
    inflight[id(hit)] = hit
    policy = request.app[POLICY]
    status, delay = policy["paths"].get(request.path, policy["default"])
    try:
        if delay:
            await asyncio.sleep(delay)
    finally:
        del inflight[id(hit)]
    hit["status"], hit["answered"] = status, time.time()
    request.app[HITS].append(hit)
    return web.Response(status=status)


async def set_policy(request: web.Request) -> web.Response:
    data = await request.json()
    request.app[POLICY].update(
        {"default": data.get("default", [204, 0]), "paths": data.get("paths", {})}
    )
    return web.json_response(request.app[POLICY])


async def hits(request: web.Request) -> web.Response:
    since = int(request.query.get("since", "0"))
    return web.json_response(request.app[HITS][since:])


async def inflight(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[INFLIGHT].values()))


def build() -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[HITS] = []
    app[INFLIGHT] = {}
    app[POLICY] = {"default": [204, 0], "paths": {}}
    app.router.add_put("/_policy", set_policy)
    app.router.add_get("/_hits", hits)
    app.router.add_get("/_inflight", inflight)
    app.router.add_post("/{tail:.*}", hook)
    return app


if __name__ == "__main__":
    web.run_app(build(), host="127.0.0.1", port=int(sys.argv[1]), print=None, backlog=1024)
