"""The FLOOR: the least a verify start could cost on this stack.

A bare aiohttp app whose POST parses the same JSON body, does one Redis write (SET of a uuid key)
and answers 202 with a request id. Run by the bench as `python -m bench.floor --port P --redis-url U`.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

__all__ = ["create_app", "main"]

REDIS = web.AppKey("redis", Redis)
URL = web.AppKey("url", str)
TTL_MS = 2 * 3600 * 1000  # the same lifetime a pending verification gets


async def start(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return web.json_response({"title": "Bad Request"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"title": "Bad Request"}, status=400)
    request_id = str(uuid.uuid4())
    await request.app[REDIS].set("floor:" + request_id, raw, px=TTL_MS)
    return web.json_response({"request_id": request_id}, status=202)


async def health(request: web.Request) -> web.Response:
    await request.app[REDIS].ping()
    return web.json_response({"status": "ok"})


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    redis = Redis.from_url(app[URL])
    app[REDIS] = redis
    yield
    await redis.aclose()


def create_app(redis_url: str) -> web.Application:
    app = web.Application()
    app[URL] = redis_url
    app.cleanup_ctx.append(_redis_ctx)
    app.router.add_post("/v2/verify", start)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    web.run_app(
        create_app(args.redis_url), host="127.0.0.1", port=args.port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
