"""GET /metrics and the middleware that counts and times every request by route template."""

from __future__ import annotations

import asyncio
import hmac
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from orchestrator.http.errors import Handler
from orchestrator.http.keys import SERVICES
from orchestrator.metrics import HTTP_LATENCY, HTTP_REQUESTS

__all__ = ["handler", "middleware"]

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
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
