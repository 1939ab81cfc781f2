"""Twilio Verify v2 Entity → Factor → Challenge routes for TOTP and Push factors, with
Notifications (push re-sends) and AccessTokens (push enrolment).

Who may call what:

- the account (Basic `AC…:token` or `SK…:secret`): everything;
- a device enrolling (Basic `token:<access token>`): create its push factor, once per token;
- a device (Basic `token:<JWT>`, ES256 by its factor key, `kid` = `config.credential_sid`): fetch,
  verify, update and delete its own factor, and list, fetch and answer its own factor's challenges.

Entities hold an opaque identity and nothing else (no PII). Push challenges are answered only by
a JWT the factor's key signed over the fields this server names in `Twilio-Verify-Signature-Fields`
(orchestrator/factors/push.py); TOTP codes are accepted once per time step
(orchestrator/factors/totp.py). Every state change is a compare-and-set on the record's version.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from orchestrator.dialects.twilio.context import service_for
from orchestrator.dialects.twilio.forms import Form
from orchestrator.dialects.twilio.pages import page_body
from orchestrator.dialects.twilio.wire import TwilioError, tw_date
from orchestrator.domain import errors
from orchestrator.factors import lifecycle, push
from orchestrator.factors.models import Challenge, Entity, Factor
from orchestrator.factors.store import FactorStore
from orchestrator.http.keys import SERVICES
from orchestrator.security.auth import AuthError, basic_credentials
from orchestrator.services import Services
from orchestrator.tenants import verify_services
from orchestrator.tenants.accounts import new_sid
from orchestrator.tenants.verify_services import Service
from orchestrator.timefmt import iso_ms, utcnow

__all__ = [
    "AUTH_PAYLOAD_MAX",
    "DEFAULT_CHALLENGE_TTL",
    "FACTOR_SID",
    "FIELDS_MAX",
    "IDENTITY",
    "JSON_MAX",
    "LABEL_MAX",
    "MAX_ATTEMPTS",
    "MAX_CHALLENGE_TTL",
    "MAX_CREATIONS_PER_DAY",
    "MAX_PUSH_FACTORS",
    "MAX_TOTP_FACTORS",
    "VALUE_MAX",
    "Caller",
    "add_entity",
    "bad_identity",
    "caller_for",
    "challenge_resource",
    "challenge_response",
    "conflict",
    "ensure_entity",
    "entity_resource",
    "expired_error",
    "factor_resource",
    "find_challenge",
    "find_entity",
    "find_factor",
    "identity_of",
    "identity_param",
    "list_page",
    "responded_error",
    "token_password",
    "unauthorized",
    "verification_failed",
]


IDENTITY = re.compile(r"[A-Za-z0-9-]{8,64}")
FACTOR_SID = r"YF[0-9a-fA-F]{32}"
MAX_ATTEMPTS = 5  # wrong answers per factor verification / per challenge; the 6th is refused
MAX_PUSH_FACTORS = 20
MAX_TOTP_FACTORS = 100
MAX_CREATIONS_PER_DAY = 100
DEFAULT_CHALLENGE_TTL = timedelta(minutes=5)
MAX_CHALLENGE_TTL = timedelta(minutes=60)
JSON_MAX = 1024
AUTH_PAYLOAD_MAX = 5456
FIELDS_MAX = 20
LABEL_MAX = 36
VALUE_MAX = 128


# ---- errors -------------------------------------------------------------------------------------


def unauthorized() -> TwilioError:
    return TwilioError(401, 20003, "Authenticate")


def bad_identity() -> TwilioError:
    return TwilioError(
        400, 60306, "Invalid Identity: 8 to 64 characters of letters, digits and dashes"
    )


def responded_error() -> TwilioError:
    return TwilioError(403, 60322, "Challenge already responded")


def expired_error() -> TwilioError:
    return TwilioError(403, 60323, "Challenge expired")


def verification_failed() -> TwilioError:
    return TwilioError(403, 60324, "Challenge verification failed")


def conflict() -> TwilioError:
    return TwilioError(409, 20409, "Conflict: too many concurrent updates")


# ---- resources ----------------------------------------------------------------------------------


def _entity_url(base: str, service_sid: str, identity: str) -> str:
    return f"{base}/v2/Services/{service_sid}/Entities/{identity}"


def entity_resource(e: Entity, base: str) -> dict[str, Any]:
    url = _entity_url(base, e.service_sid, e.identity)
    return {
        "sid": e.sid,
        "identity": e.identity,
        "account_sid": e.account_sid,
        "service_sid": e.service_sid,
        "date_created": tw_date(e.date_created),
        "date_updated": tw_date(e.date_updated),
        "url": url,
        "links": {
            "factors": f"{url}/Factors",
            "new_factors": f"{url}/Factors",
            "challenges": f"{url}/Challenges",
        },
    }


def factor_resource(
    f: Factor, base: str, *, binding: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A factor; `binding` (and `options`) only in the answer to its creation."""
    body: dict[str, Any] = {
        "sid": f.sid,
        "account_sid": f.account_sid,
        "service_sid": f.service_sid,
        "entity_sid": f.entity_sid,
        "identity": f.identity,
        "date_created": tw_date(f.date_created),
        "date_updated": tw_date(f.date_updated),
        "friendly_name": f.friendly_name,
        "status": f.status,
        "factor_type": f.factor_type,
        "config": dict(f.config),
        "metadata": f.metadata,
        "url": f"{_entity_url(base, f.service_sid, f.identity)}/Factors/{f.sid}",
    }
    if binding is not None:
        body["binding"] = binding
        body["options"] = None
    return body


def challenge_resource(c: Challenge, base: str) -> dict[str, Any]:
    if c.identity:
        url = f"{_entity_url(base, c.service_sid, c.identity)}/Challenges/{c.sid}"
        links: dict[str, str] | None = {"notifications": f"{url}/Notifications"}
    else:
        # a discoverable passkey challenge belongs to no entity until a credential answers it
        url = f"{base}/v2/Services/{c.service_sid}/Passkeys/Challenges"
        links = None
    return {
        "sid": c.sid,
        "account_sid": c.account_sid,
        "service_sid": c.service_sid,
        "entity_sid": c.entity_sid,
        "identity": c.identity,
        "factor_sid": c.factor_sid,
        "date_created": tw_date(c.date_created),
        "date_updated": tw_date(c.date_updated),
        "date_responded": tw_date(c.date_responded),
        "expiration_date": tw_date(c.expiration_date),
        "status": c.status,
        "responded_reason": c.responded_reason,
        "details": c.details or None,
        "hidden_details": c.hidden_details,
        "metadata": c.metadata,
        "factor_type": c.factor_type,
        "url": url,
        "links": links,
    }


def challenge_response(c: Challenge, base: str, status: int = 200) -> web.Response:
    """A challenge; while a push challenge is pending, the fields its approval must sign."""
    headers: dict[str, str] = {}
    if c.factor_type == "push" and c.status == "pending":
        headers[push.SIGNATURE_FIELDS_HEADER] = ",".join(push.SIGNATURE_FIELDS)
    return web.json_response(challenge_resource(c, base), status=status, headers=headers)


def list_page(
    request: web.Request,
    key: str,
    items: list[dict[str, Any]],
    page: int,
    size: int,
    total: int,
    query: dict[str, str],
) -> dict[str, Any]:
    """A list page whose meta URLs keep the list's filters."""
    body = page_body(request, key, items, page, size, total)
    if query:
        extra = "&" + urlencode(query)
        meta = body["meta"]
        for name in ("first_page_url", "previous_page_url", "next_page_url", "url"):
            if meta[name] is not None:
                meta[name] += extra
    return body


# ---- callers ------------------------------------------------------------------------------------


@dataclass
class Caller:
    services: Services
    service: Service
    store: FactorStore
    # set when a device called with its factor's JWT: it may touch only that factor
    device: Factor | None = None


def token_password(request: web.Request) -> str | None:
    """The password of a Basic `token:<…>` header (devices), else None (account credentials)."""
    try:
        user, password = basic_credentials(request.headers.get("Authorization"))
    except AuthError:
        return None
    return password if user == "token" else None


async def caller_for(request: web.Request, *, device: bool = False) -> Caller:
    token = token_password(request)
    if token is None:
        services, service = await service_for(request)
        return Caller(services, service, FactorStore(services.redis))
    if not device:
        raise unauthorized()
    services = request.app[SERVICES]
    store = FactorStore(services.redis)
    kid = push.unverified_kid(token)
    factor = await store.factor_by_credential(kid) if kid is not None else None
    if (
        factor is None
        or factor.factor_type != "push"
        or factor.service_sid != request.match_info["service_sid"]
        or factor.identity != request.match_info["identity"]
        or not push.verify_device_token(
            token,
            factor.binding["public_key"],
            factor.account_sid,
            leeway=services.settings.jwt_leeway_seconds,
            now=time.time(),
        )
    ):
        raise unauthorized()
    owner = await verify_services.get_service(
        services.redis, factor.account_sid, factor.service_sid
    )
    if owner is None:
        raise errors.NotFound(factor.service_sid)
    return Caller(services, owner, store, device=factor)


def identity_of(request: web.Request) -> str:
    return request.match_info["identity"]


def identity_param(form: Form) -> str:
    """The form's Identity, if the entity rules allow it (60306 otherwise)."""
    identity = form.text("Identity", max_len=256)
    if identity is None or not IDENTITY.fullmatch(identity):
        raise bad_identity()
    return identity


async def find_entity(caller: Caller, identity: str) -> Entity:
    entity = await caller.store.get_entity(caller.service.sid, identity)
    if entity is None:
        raise errors.NotFound(identity)
    return entity


async def ensure_entity(caller: Caller, identity: str) -> Entity:
    """The entity, created on first use (a factor for a new identity creates it)."""
    if not IDENTITY.fullmatch(identity):
        raise bad_identity()
    found = await caller.store.get_entity(caller.service.sid, identity)
    if found is not None:
        return found
    created = await add_entity(caller, identity)
    if created is not None:
        return created
    raced = await caller.store.get_entity(caller.service.sid, identity)
    if raced is None:
        raise conflict()
    return raced


async def add_entity(caller: Caller, identity: str) -> Entity | None:
    """A new entity for `identity`, stored; None when the service has one already."""
    now = utcnow()
    entity = Entity(
        sid=new_sid("YE"),
        identity=identity,
        account_sid=caller.service.account_sid,
        service_sid=caller.service.sid,
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    if not await caller.store.add_entity(entity, int(now.timestamp() * 1000)):
        return None
    return entity


async def find_factor(caller: Caller, identity: str, sid: str) -> Factor:
    """The factor `sid` of this entity; a device sees only its own."""
    if caller.device is not None and caller.device.sid != sid:
        raise errors.NotFound(sid)
    factor = await caller.store.get_factor(sid) if sid.startswith("YF") else None
    if factor is None or factor.service_sid != caller.service.sid or factor.identity != identity:
        raise errors.NotFound(sid)
    return factor


async def find_challenge(caller: Caller, identity: str, sid: str) -> Challenge:
    challenge = await caller.store.get_challenge(sid) if sid.startswith("YC") else None
    if (
        challenge is None
        or challenge.service_sid != caller.service.sid
        or challenge.identity != identity
        or (caller.device is not None and challenge.factor_sid != caller.device.sid)
    ):
        raise errors.NotFound(sid)
    return await lifecycle.expire_if_due(caller.store, challenge)
