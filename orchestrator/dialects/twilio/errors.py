"""Twilio errors on the wire: `{code, message, more_info, status}` for every failure (a Redis
that is unavailable, e.g. failing over, is a retryable 503 with Retry-After, not a 500)."""

from __future__ import annotations

import logging

from aiohttp import web

from orchestrator.dialects.twilio import wire as twilio
from orchestrator.domain import errors
from orchestrator.http.body import BadJSON
from orchestrator.http.errors import Handler
from orchestrator.redisconn import RETRY_AFTER_SECONDS, unavailable

__all__ = ["handle", "owns"]

log = logging.getLogger("orchestrator.web")


def owns(path: str) -> bool:
    """The Twilio dialect's paths, as opposed to the Vonage dialect's and the service's own."""
    return path.startswith("/v2/Services")


def _twilio_response(exc: twilio.TwilioError) -> web.Response:
    return web.json_response(
        twilio.error_body(exc.code, exc.message, exc.status), status=exc.status, headers=exc.headers
    )


async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except twilio.TwilioError as exc:
        return _twilio_response(exc)
    except errors.DomainError as exc:
        return _twilio_response(twilio.error_for(exc, request.path))
    except BadJSON:
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
    except Exception as exc:
        if unavailable(exc):
            log.warning("redis unavailable on %s %s: %s", request.method, request.path, exc)
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            busy = twilio.TwilioError(503, 20503, "Service Unavailable", headers=retry)
            return _twilio_response(busy)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _twilio_response(twilio.TwilioError(500, 20500, "Internal Server Error"))
