"""Twilio request context: the caller's account and service, the form body, absolute URLs."""

from __future__ import annotations

from aiohttp import web

from orchestrator.dialects.twilio import wire as tw
from orchestrator.dialects.twilio.forms import Form, invalid
from orchestrator.domain import errors
from orchestrator.http.keys import SERVICES
from orchestrator.security.auth import AuthError, basic_credentials
from orchestrator.services import Services
from orchestrator.tenants import verify_services
from orchestrator.tenants.accounts import resolve_basic
from orchestrator.tenants.verify_services import Service

__all__ = ["base_url", "read_form", "service_for", "twilio_account"]


def base_url(request: web.Request) -> str:
    """Absolute URLs in resources point at whoever the client called (SDK pagination needs it)."""
    return f"{request.scheme}://{request.host}"


async def twilio_account(request: web.Request) -> tuple[Services, str]:
    services = request.app[SERVICES]
    try:
        user, password = basic_credentials(request.headers.get("Authorization"))
    except AuthError:
        raise tw.TwilioError(401, 20003, "Authenticate") from None
    account = await resolve_basic(services.redis, user, password)
    if account is None:
        raise tw.TwilioError(401, 20003, "Authenticate")
    return services, account.sid


async def service_for(request: web.Request) -> tuple[Services, Service]:
    services, account = await twilio_account(request)
    sid = request.match_info["service_sid"]
    service = await verify_services.get_service(services.redis, account, sid)
    if service is None:
        raise errors.NotFound(sid)
    return services, service


async def read_form(request: web.Request) -> Form:
    """The request's form; an undecodable one is the caller's 400 (20001 invalid body)."""
    try:
        return Form(await request.post())
    except (ValueError, LookupError):
        # undecodable bytes, an unknown charset or a broken multipart body: the caller's 400
        raise invalid("body") from None
