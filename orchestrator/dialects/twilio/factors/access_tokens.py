"""Access tokens: the one-time credential a device enrols its push factor with."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from orchestrator import constants
from orchestrator.dialects.twilio.context import base_url, read_form
from orchestrator.dialects.twilio.factors.common import (
    Caller,
    caller_for,
    identity_of,
    identity_param,
    unauthorized,
)
from orchestrator.dialects.twilio.forms import invalid
from orchestrator.dialects.twilio.wire import tw_date
from orchestrator.domain import errors
from orchestrator.factors.store import FactorStore
from orchestrator.http.keys import SERVICES
from orchestrator.tenants import verify_services
from orchestrator.tenants.accounts import new_sid
from orchestrator.timefmt import iso_ms, utcnow

__all__ = [
    "AccessToken",
    "access_token_resource",
    "create_access_token",
    "enrolment_for",
    "fetch_access_token",
    "token_hash",
]


# ---- access tokens ------------------------------------------------------------------------------


class AccessToken(BaseModel):
    sid: str
    account_sid: str
    service_sid: str
    entity_identity: str
    factor_type: Literal["push"] = "push"
    factor_friendly_name: str | None = None
    token: str  # sealed
    ttl: int
    date_created: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def access_token_resource(t: AccessToken, token: str, base: str) -> dict[str, Any]:
    return {
        "sid": t.sid,
        "account_sid": t.account_sid,
        "service_sid": t.service_sid,
        "entity_identity": t.entity_identity,
        "factor_type": t.factor_type,
        "factor_friendly_name": t.factor_friendly_name,
        "token": token,
        "url": f"{base}/v2/Services/{t.service_sid}/AccessTokens/{t.sid}",
        "ttl": t.ttl,
        "date_created": tw_date(t.date_created),
    }


async def create_access_token(request: web.Request) -> web.Response:
    caller = await caller_for(request)
    form = await read_form(request)
    identity = identity_param(form)
    factor_type = form.text("FactorType", required=True, max_len=16)
    if factor_type != "push":
        raise invalid("FactorType")
    friendly = form.text("FactorFriendlyName", max_len=64)
    ttl = form.integer("Ttl", 60, 300) or 60
    token = secrets.token_urlsafe(32)
    record = AccessToken(
        sid=new_sid("YK"),
        account_sid=caller.service.account_sid,
        service_sid=caller.service.sid,
        entity_identity=identity,
        factor_friendly_name=friendly,
        token=caller.services.tools.seal(token),
        ttl=ttl,
        date_created=iso_ms(utcnow()),
    )
    redis = caller.services.redis
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(constants.ACCESS_TOKEN_PREFIX + record.sid, record.model_dump_json(), ex=ttl)
        pipe.set(constants.ACCESS_TOKEN_VALUE_PREFIX + token_hash(token), record.sid, ex=ttl)
        await pipe.execute()
    return web.json_response(access_token_resource(record, token, base_url(request)), status=201)


async def fetch_access_token(request: web.Request) -> web.Response:
    caller = await caller_for(request)
    sid = request.match_info["sid"][:64]
    raw = await caller.services.redis.get(constants.ACCESS_TOKEN_PREFIX + sid)
    record = AccessToken.model_validate_json(raw) if raw is not None else None
    if record is None or record.service_sid != caller.service.sid:
        raise errors.NotFound(sid)
    token = caller.services.tools.unseal(record.token)
    return web.json_response(access_token_resource(record, token, base_url(request)))


async def enrolment_for(request: web.Request, token: str) -> tuple[Caller, AccessToken]:
    """The caller behind a `token:<access token>` factor creation (the token is not yet spent)."""
    services = request.app[SERVICES]
    sid = await services.redis.get(constants.ACCESS_TOKEN_VALUE_PREFIX + token_hash(token))
    raw = await services.redis.get(constants.ACCESS_TOKEN_PREFIX + sid.decode()) if sid else None
    if raw is None:
        raise unauthorized()
    record = AccessToken.model_validate_json(raw)
    if record.service_sid != request.match_info[
        "service_sid"
    ] or record.entity_identity != identity_of(request):
        raise unauthorized()
    service = await verify_services.get_service(
        services.redis, record.account_sid, record.service_sid
    )
    if service is None:
        raise unauthorized()
    return Caller(services, service, FactorStore(services.redis)), record
