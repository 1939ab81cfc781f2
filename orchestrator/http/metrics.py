"""GET /metrics and the middleware that counts and times every request by route template.

/metrics also carries the autoscaling gauges (orchestrator/metrics.py `QueueGauges`), read from
Redis at each scrape by one read-only Lua call (`_QUEUE_GAUGES`, one round trip): two ZCOUNTs
and a ZRANGE 0 0 of `arq:queue` (O(log n)), ZCARD of the webhook retry set (O(1)), and a ZRANGE
of the small workers set + one MGET of their jobs counts (O(workers), capped). No SCAN, no KEYS.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator import constants
from orchestrator.engine.jobs import QUEUE
from orchestrator.http.errors import Handler
from orchestrator.http.keys import SERVICES
from orchestrator.metrics import HTTP_LATENCY, HTTP_REQUESTS, QueueGauges, queue_exposition

__all__ = ["handler", "middleware", "read_queue_gauges"]

log = logging.getLogger("orchestrator.http.metrics")

# at most this many workers' counts are summed (the set only holds live ones, pruned by claims)
_MAX_WORKERS = 1000
# a scrape waits this long for Redis, then answers without the queue gauges (verify_queue_up 0)
_READ_TIMEOUT_S = 2.0

# KEYS[1] arq's queue, KEYS[2] the workers set, KEYS[3] the webhook retry set; ARGV[1] now ms,
# ARGV[2] the jobs count key prefix, ARGV[3] how many workers to read at most.
# Returns {due, deferred, oldest score or nil, jobs held, live workers, webhooks awaiting retry,
# score of the oldest job no worker holds or nil}. A worker's count that expired (killed
# worker) reads nil and counts 0: no clock is compared. Workers claim the due jobs oldest
# first and a job keeps its score while held, so the held jobs are the first `held` of the
# queue and the one at rank `held` is the oldest waiting (O(log n), no per-job look-up).
_QUEUE_GAUGES = """
local now = ARGV[1]
local due = redis.call('ZCOUNT', KEYS[1], '-inf', now)
local deferred = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)
local held, live = 0, 0
if #ids > 0 then
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = ARGV[2] .. id end
  for _, value in ipairs(redis.call('MGET', unpack(keys))) do
    local n = value and tonumber(value)
    if n then
      live = live + 1
      if n > 0 then held = held + n end
    end
  end
end
local waiting = redis.call('ZRANGE', KEYS[1], held, held, 'WITHSCORES')
return {due, deferred, oldest[2] or false, held, live, redis.call('ZCARD', KEYS[3]),
        waiting[2] or false}
"""

_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def _route(request: web.Request) -> str:
    match_info = request.match_info
    if match_info.http_exception is not None:
        return "unmatched"
    route = match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by route template and final status (outermost middleware,
    so the status is the one the error middleware answered)."""
    began = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away before the answer (nginx's convention)
        raise
    finally:
        route = _route(request)
        method = request.method if request.method in _METHODS else "OTHER"
        HTTP_REQUESTS.labels(route, method, str(status)).inc()
        HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - began)


async def handler(request: web.Request) -> web.Response:
    """GET /metrics: this process's registry in the Prometheus text format; with
    VERIFY_METRICS_TOKEN set, only for `Authorization: Bearer <token>` (Prometheus'
    `authorization` / `bearer_token` scrape setting)."""
    token = request.app[SERVICES].settings.metrics_token
    if token is not None:
        expected = ("Bearer " + token.get_secret_value()).encode()
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.Response(
                status=401,
                text="metrics need the scrape token\n",
                headers={"WWW-Authenticate": "Bearer"},
            )
    gauges = await _gauges_or_none(request.app[SERVICES].redis)
    return web.Response(
        body=generate_latest(REGISTRY) + queue_exposition(gauges),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


async def read_queue_gauges(redis: Redis, now_ms: int | None = None) -> QueueGauges:
    """The deployment's queue figures, in one round trip (see `_QUEUE_GAUGES`)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    raw: list[Any] = await redis.register_script(_QUEUE_GAUGES)(
        keys=[QUEUE, constants.WORKERS_SET, constants.WEBHOOK_RETRY_SET],
        args=[now, constants.WORKER_JOBS_PREFIX, _MAX_WORKERS],
    )
    due, deferred, oldest, held, live, retrying, waiting = raw
    return QueueGauges(
        due=int(due),
        lag_seconds=_age_s(oldest, now),
        wait_seconds=_age_s(waiting, now),
        deferred=int(deferred),
        in_progress=int(held),
        workers=int(live),
        webhooks_awaiting_retry=int(retrying),
    )


def _age_s(score: bytes | None, now_ms: int) -> float:
    """Seconds since a queue score (ms) came due; 0 when none, or not due yet."""
    if score is None or float(score) > now_ms:
        return 0.0
    return (now_ms - float(score)) / 1000


async def _gauges_or_none(redis: Redis) -> QueueGauges | None:
    """None when Redis does not answer in time: /metrics still serves this process's own
    series, with `verify_queue_up 0` instead of stale queue figures."""
    try:
        async with asyncio.timeout(_READ_TIMEOUT_S):
            return await read_queue_gauges(redis)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("queue gauges not read: %s", type(exc).__name__)
        return None
