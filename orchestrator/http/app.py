"""The aiohttp application: `create_app(settings)`, the error middleware and route wiring."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from . import auth
from .dialects import twilio, vonage
from .domain import errors
from .services import Services, build_services
from .settings import Settings

__all__ = ["SERVICES", "create_app", "problem_response", "read_json"]

log = logging.getLogger("orchestrator.web")

SERVICES = web.AppKey("services", Services)
_SETTINGS = web.AppKey("settings", Settings)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/problem+json",
    )


def _problem(status: int, title: str, detail: str, anchor: str) -> web.Response:
    return problem_response(
        status,
        {
            "type": vonage.ERROR_BASE + anchor,
            "title": title,
            "detail": detail,
            "instance": str(uuid.uuid4()),
        },
    )


async def read_json(request: web.Request) -> Any:
    """The body as JSON; a malformed body is the caller's error (400), never ours."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    # ValueError also covers bad UTF-8 and integers over Python's digit limit; RecursionError is
    # deeply nested arrays/objects: all are the caller's malformed JSON, not a 500
    except (ValueError, RecursionError):
        raise _BadJSON() from None


class _BadJSON(Exception):
    pass


def _twilio_path(path: str) -> bool:
    return path.startswith("/v2/Services")


def _twilio_response(exc: twilio.TwilioError) -> web.Response:
    return web.json_response(
        twilio.error_body(exc.code, exc.message, exc.status), status=exc.status, headers=exc.headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves in its dialect's error shape with a 4xx, or a logged 500 (no traceback)."""
    if _twilio_path(request.path):
        return await _twilio_errors(request, handler)
    try:
        return await handler(request)
    except errors.DomainError as exc:
        status, body = vonage.problem_for(exc)
        return problem_response(status, body)
    except auth.AuthError as exc:
        anchor = "jwt-expired" if exc.expired else "unauthorized"
        return _problem(401, "Unauthorized", exc.detail, anchor)
    except _BadJSON:
        return _problem(400, "Bad Request", "The request body is not valid JSON.", "bad-request")
    except web.HTTPRequestEntityTooLarge:
        detail = "The request body is larger than the service accepts."
        return _problem(413, "Payload Too Large", detail, "payload-too-large")
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/problem+json":
            raise
        return _problem(exc.status, exc.reason, exc.reason, exc.reason.lower().replace(" ", "-"))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        detail = "There was an error processing your request in the Platform."
        return _problem(500, "Internal error", detail, "internal-error")


async def _twilio_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except twilio.TwilioError as exc:
        return _twilio_response(exc)
    except errors.DomainError as exc:
        return _twilio_response(twilio.error_for(exc, request.path))
    except _BadJSON:
        return _twilio_response(twilio.TwilioError(400, 60200, "Invalid parameter: body"))
    except web.HTTPRequestEntityTooLarge:
        return _twilio_response(twilio.TwilioError(413, 20413, "Request entity too large"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"The requested resource {request.path} was not found"
            return _twilio_response(twilio.TwilioError(404, 20404, message))
        return _twilio_response(twilio.TwilioError(exc.status, exc.status, exc.reason))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _twilio_response(twilio.TwilioError(500, 20500, "Internal Server Error"))


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[_SETTINGS]
    redis = Redis.from_url(settings.redis_url)
    app[SERVICES] = await build_services(settings, redis)
    yield
    await redis.aclose()


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        await services.redis.ping()
    except Exception:
        return web.json_response({"status": "unavailable", "redis": False}, status=503)
    return web.json_response({"status": "ok", "redis": True})


def create_app(settings: Settings) -> web.Application:
    from . import (
        api_factors,
        api_passkeys,
        api_sandbox,
        api_silent_auth,
        api_twilio,
        api_twilio_ratelimits,
        api_twilio_webhooks,
        api_vonage,
        authguard,
        forwarded,
        metrics,
        openapi,
    )

    # the client's address first (behind trusted proxies), then metrics (it sees the final
    # status); the Basic-auth guard innermost (it sees the handlers' 401s before the error
    # middleware turns them into responses)
    app = web.Application(
        middlewares=[
            forwarded.middleware_for(settings.trusted_proxies),
            metrics.middleware,
            error_middleware,
            authguard.middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[_SETTINGS] = settings
    app.cleanup_ctx.append(_services_ctx)
    authguard.setup(app)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi.handler)
    app.router.add_get("/metrics", metrics.handler)
    api_vonage.setup_routes(app)
    api_silent_auth.setup_routes(app)
    api_twilio.setup_routes(app)
    api_passkeys.setup_routes(app, sandbox=settings.sandbox)
    api_twilio_webhooks.setup_routes(app)
    api_factors.setup_routes(app)
    api_twilio_ratelimits.setup_routes(app)
    if settings.sandbox:
        api_sandbox.setup_routes(app)
    return app
