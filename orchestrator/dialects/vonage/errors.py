"""Vonage errors on the wire: problem+json bodies for every failure: a 4xx, a retryable 503
(Redis unavailable, e.g. failing over), or a logged 500."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from aiohttp import web

from orchestrator.dialects.vonage import wire as vonage
from orchestrator.domain import errors
from orchestrator.http.body import BadJSON
from orchestrator.http.errors import Handler
from orchestrator.redisconn import RETRY_AFTER_SECONDS, unavailable
from orchestrator.security import auth

__all__ = ["handle", "problem_response"]

log = logging.getLogger("orchestrator.web")


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


async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves in its dialect's error shape with a 4xx, or a logged 500 (no traceback)."""
    try:
        return await handler(request)
    except errors.DomainError as exc:
        status, body = vonage.problem_for(exc)
        return problem_response(status, body)
    except auth.AuthError as exc:
        anchor = "jwt-expired" if exc.expired else "unauthorized"
        return _problem(401, "Unauthorized", exc.detail, anchor)
    except BadJSON:
        return _problem(400, "Bad Request", "The request body is not valid JSON.", "bad-request")
    except web.HTTPRequestEntityTooLarge:
        detail = "The request body is larger than the service accepts."
        return _problem(413, "Payload Too Large", detail, "payload-too-large")
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/problem+json":
            raise
        return _problem(exc.status, exc.reason, exc.reason, exc.reason.lower().replace(" ", "-"))
    except Exception as exc:
        if unavailable(exc):
            # not the request's fault and not a bug: the same request soon will likely succeed
            log.warning("redis unavailable on %s %s: %s", request.method, request.path, exc)
            detail = "The service is briefly unavailable. Try again shortly."
            response = _problem(503, "Service Unavailable", detail, "service-unavailable")
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        detail = "There was an error processing your request in the Platform."
        return _problem(500, "Internal error", detail, "internal-error")
