"""The Passkeys routes: each of the four operations (dialects/twilio/passkeys.py) behind its URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from orchestrator.dialects.twilio.context import base_url, service_for
from orchestrator.dialects.twilio.passkeys import (
    Operation,
    approve_challenge,
    create_challenge,
    create_factor,
    verify_factor,
)
from orchestrator.http.body import read_json

__all__ = ["setup_routes"]


def _handler(operation: Operation, status: int) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        services, service = await service_for(request)
        body = await read_json(request)
        resource = await operation(services, service, body, base_url(request))
        return web.json_response(resource, status=status)

    return handle


def setup_routes(app: web.Application) -> None:
    """The Passkeys endpoints (the sandbox's demo page is wired by the app factory)."""
    r = app.router
    r.add_post("/v2/Services/{service_sid}/Passkeys/Factors", _handler(create_factor, 201))
    r.add_post("/v2/Services/{service_sid}/Passkeys/VerifyFactor", _handler(verify_factor, 200))
    r.add_post("/v2/Services/{service_sid}/Passkeys/Challenges", _handler(create_challenge, 201))
    r.add_post(
        "/v2/Services/{service_sid}/Passkeys/ApproveChallenge", _handler(approve_challenge, 200)
    )
