"""Sandbox-only routes: the outbox of sent messages and the sandbox operator's authorize hop."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from orchestrator.domain import errors
from orchestrator.engine import outbox
from orchestrator.http.keys import SERVICES
from orchestrator.security.auth import authenticate_account

__all__ = ["DEVICE_IP_HEADER", "setup_routes"]

# lets tests and demos say which "handset" is calling; only the sandbox operator reads it
DEVICE_IP_HEADER = "X-Sandbox-Device-IP"


async def messages(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    header = request.headers.get("Authorization")
    account = await authenticate_account(
        services.redis, header, services.settings.jwt_leeway_seconds
    )
    to = request.query.get("to", "").strip()
    if not to or len(to) > 254:
        raise errors.InvalidParameters([("to", "to is required")])
    found = await outbox.list_messages(services.redis, account, to)
    return web.json_response(found)


async def operator_authorize(request: web.Request) -> web.Response:
    """The sandbox operator's front door: recognise the device, then hop back with a code."""
    services = request.app[SERVICES]
    redirect_uri = request.query.get("redirect_uri", "")
    public = services.settings.public_url.rstrip("/") + "/"
    # only ever send the device back to this service: the operator is no open redirect
    if not redirect_uri.startswith(public):
        raise errors.InvalidParameters([("redirect_uri", "redirect_uri is not registered")])
    login_hint = request.query.get("login_hint", "")
    if not login_hint.startswith("tel:+"):
        raise errors.InvalidParameters([("login_hint", "login_hint must be tel:+<E.164>")])
    device_ip = request.headers.get(DEVICE_IP_HEADER) or request.remote or ""
    code = await services.operator.authorize(device_ip=device_ip.strip(), msisdn=login_hint[5:])
    query = urlencode({"code": code, "state": request.query.get("state", "")})
    raise web.HTTPFound(f"{redirect_uri}?{query}")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/sandbox/v1/messages", messages)
    app.router.add_get("/sandbox/operator/authorize", operator_authorize)
