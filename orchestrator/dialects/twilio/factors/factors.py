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

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel

from . import constants, verify_services
from .accounts import new_sid
from .api_twilio import base_url, page_body, page_params, read_form, service_for
from .api_twilio_pages import page_response
from .auth import AuthError, basic_credentials
from .dialects.twilio import TwilioError, tw_date
from .dialects.twilio_forms import Form, invalid
from .domain import errors
from .factors import events, lifecycle, push, totp
from .factors.models import Challenge, Entity, Factor
from .factors.store import FactorStore, StaleWrite
from .services import Services
from .timefmt import iso_ms, utcnow
from .verify_services import Service
from .web import SERVICES

__all__ = ["challenge_resource", "entity_resource", "factor_resource", "setup_routes"]

IDENTITY = re.compile(r"[A-Za-z0-9-]{8,64}")
_FACTOR_SID = r"YF[0-9a-fA-F]{32}"
MAX_ATTEMPTS = 5  # wrong answers per factor verification / per challenge; the 6th is refused
MAX_PUSH_FACTORS = 20
MAX_TOTP_FACTORS = 100
MAX_CREATIONS_PER_DAY = 100
DEFAULT_CHALLENGE_TTL = timedelta(minutes=5)
MAX_CHALLENGE_TTL = timedelta(minutes=60)
_JSON_MAX = 1024
_AUTH_PAYLOAD_MAX = 5456
_FIELDS_MAX = 20
_LABEL_MAX = 36
_VALUE_MAX = 128


# ---- errors -------------------------------------------------------------------------------------


def _unauthorized() -> TwilioError:
    return TwilioError(401, 20003, "Authenticate")


def _bad_identity() -> TwilioError:
    return TwilioError(
        400, 60306, "Invalid Identity: 8 to 64 characters of letters, digits and dashes"
    )


def _responded() -> TwilioError:
    return TwilioError(403, 60322, "Challenge already responded")


def _expired() -> TwilioError:
    return TwilioError(403, 60323, "Challenge expired")


def _verification_failed() -> TwilioError:
    return TwilioError(403, 60324, "Challenge verification failed")


def _conflict() -> TwilioError:
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


def _challenge_response(c: Challenge, base: str, status: int = 200) -> web.Response:
    """A challenge; while a push challenge is pending, the fields its approval must sign."""
    headers: dict[str, str] = {}
    if c.factor_type == "push" and c.status == "pending":
        headers[push.SIGNATURE_FIELDS_HEADER] = ",".join(push.SIGNATURE_FIELDS)
    return web.json_response(challenge_resource(c, base), status=status, headers=headers)


def _page(
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


def _token_password(request: web.Request) -> str | None:
    """The password of a Basic `token:<…>` header (devices), else None (account credentials)."""
    try:
        user, password = basic_credentials(request.headers.get("Authorization"))
    except AuthError:
        return None
    return password if user == "token" else None


async def _caller(request: web.Request, *, device: bool = False) -> Caller:
    token = _token_password(request)
    if token is None:
        services, service = await service_for(request)
        return Caller(services, service, FactorStore(services.redis))
    if not device:
        raise _unauthorized()
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
        raise _unauthorized()
    owner = await verify_services.get_service(
        services.redis, factor.account_sid, factor.service_sid
    )
    if owner is None:
        raise errors.NotFound(factor.service_sid)
    return Caller(services, owner, store, device=factor)


def _identity(request: web.Request) -> str:
    return request.match_info["identity"]


def _identity_param(form: Form) -> str:
    """The form's Identity, if the entity rules allow it (60306 otherwise)."""
    identity = form.text("Identity", max_len=256)
    if identity is None or not IDENTITY.fullmatch(identity):
        raise _bad_identity()
    return identity


async def _entity(caller: Caller, identity: str) -> Entity:
    entity = await caller.store.get_entity(caller.service.sid, identity)
    if entity is None:
        raise errors.NotFound(identity)
    return entity


async def _ensure_entity(caller: Caller, identity: str) -> Entity:
    """The entity, created on first use (a factor for a new identity creates it)."""
    if not IDENTITY.fullmatch(identity):
        raise _bad_identity()
    found = await caller.store.get_entity(caller.service.sid, identity)
    if found is not None:
        return found
    created = await _add_entity(caller, identity)
    if created is not None:
        return created
    raced = await caller.store.get_entity(caller.service.sid, identity)
    if raced is None:
        raise _conflict()
    return raced


async def _add_entity(caller: Caller, identity: str) -> Entity | None:
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


async def _factor(caller: Caller, identity: str, sid: str) -> Factor:
    """The factor `sid` of this entity; a device sees only its own."""
    if caller.device is not None and caller.device.sid != sid:
        raise errors.NotFound(sid)
    factor = await caller.store.get_factor(sid) if sid.startswith("YF") else None
    if factor is None or factor.service_sid != caller.service.sid or factor.identity != identity:
        raise errors.NotFound(sid)
    return factor


async def _challenge(caller: Caller, identity: str, sid: str) -> Challenge:
    challenge = await caller.store.get_challenge(sid) if sid.startswith("YC") else None
    if (
        challenge is None
        or challenge.service_sid != caller.service.sid
        or challenge.identity != identity
        or (caller.device is not None and challenge.factor_sid != caller.device.sid)
    ):
        raise errors.NotFound(sid)
    return await lifecycle.expire_if_due(caller.store, challenge)


# ---- entities -----------------------------------------------------------------------------------


async def create_entity(request: web.Request) -> web.Response:
    caller = await _caller(request)
    form = await read_form(request)
    identity = _identity_param(form)
    entity = await _add_entity(caller, identity)
    if entity is None:
        raise TwilioError(409, 20409, f"Entity {identity} already exists")
    return web.json_response(entity_resource(entity, base_url(request)), status=201)


async def fetch_entity(request: web.Request) -> web.Response:
    caller = await _caller(request)
    entity = await _entity(caller, _identity(request))
    return web.json_response(entity_resource(entity, base_url(request)))


async def list_entities(request: web.Request) -> web.Response:
    caller = await _caller(request)
    fetch = partial(caller.store.list_entities, caller.service.sid)
    return await page_response(request, "entities", fetch, entity_resource)


async def delete_entity(request: web.Request) -> web.Response:
    """The entity, its factors (each with a factor.deleted event) and its challenges."""
    caller = await _caller(request)
    entity = await _entity(caller, _identity(request))
    factors = await caller.store.factors_of(entity.service_sid, entity.identity)
    challenges = await caller.store.challenges_of(entity.service_sid, entity.identity)
    await caller.store.delete_entity(entity)
    for challenge in challenges:
        if challenge.status == "pending":
            await lifecycle.cancel_expiry(caller.store.redis, challenge.sid)
    for factor in factors:
        await events.emit(caller.store.redis, "factor.deleted", factor)
    return web.Response(status=204)


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


def _token_hash(token: str) -> str:
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
    caller = await _caller(request)
    form = await read_form(request)
    identity = _identity_param(form)
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
        pipe.set(constants.ACCESS_TOKEN_VALUE_PREFIX + _token_hash(token), record.sid, ex=ttl)
        await pipe.execute()
    return web.json_response(access_token_resource(record, token, base_url(request)), status=201)


async def fetch_access_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    sid = request.match_info["sid"][:64]
    raw = await caller.services.redis.get(constants.ACCESS_TOKEN_PREFIX + sid)
    record = AccessToken.model_validate_json(raw) if raw is not None else None
    if record is None or record.service_sid != caller.service.sid:
        raise errors.NotFound(sid)
    token = caller.services.tools.unseal(record.token)
    return web.json_response(access_token_resource(record, token, base_url(request)))


async def _enrolment(request: web.Request, token: str) -> tuple[Caller, AccessToken]:
    """The caller behind a `token:<access token>` factor creation (the token is not yet spent)."""
    services = request.app[SERVICES]
    sid = await services.redis.get(constants.ACCESS_TOKEN_VALUE_PREFIX + _token_hash(token))
    raw = await services.redis.get(constants.ACCESS_TOKEN_PREFIX + sid.decode()) if sid else None
    if raw is None:
        raise _unauthorized()
    record = AccessToken.model_validate_json(raw)
    if record.service_sid != request.match_info[
        "service_sid"
    ] or record.entity_identity != _identity(request):
        raise _unauthorized()
    service = await verify_services.get_service(
        services.redis, record.account_sid, record.service_sid
    )
    if service is None:
        raise _unauthorized()
    return Caller(services, service, FactorStore(services.redis)), record


# ---- factors ------------------------------------------------------------------------------------


def _json_strings(form: Form, name: str) -> dict[str, Any] | None:
    """A JSON object parameter with string values, at most 1024 characters."""
    raw = form.text(name, max_len=_JSON_MAX)
    if raw is None:
        return None
    value = form.json_object(name, string_values=True)
    if value is not None and not all(isinstance(v, str) for v in value.values()):
        raise invalid(name)
    return value


def _push_platform(form: Form, *, required: bool) -> str | None:
    platform = form.text("Config.NotificationPlatform", required=required, max_len=8)
    if platform is not None and platform not in {"apn", "fcm", "none"}:
        raise invalid("Config.NotificationPlatform")
    return platform


def _totp_config(form: Form, defaults: totp.TotpConfig) -> totp.TotpConfig:
    time_step = form.integer("Config.TimeStep", *totp.TIME_STEP_RANGE)
    skew = form.integer("Config.Skew", *totp.SKEW_RANGE)
    code_length = form.integer("Config.CodeLength", *totp.CODE_LENGTH_RANGE)
    alg = form.text("Config.Alg", max_len=8)
    if alg is not None and alg not in totp.ALGORITHMS:
        raise invalid("Config.Alg")
    return totp.TotpConfig(
        time_step=defaults.time_step if time_step is None else time_step,
        skew=defaults.skew if skew is None else skew,
        code_length=defaults.code_length if code_length is None else code_length,
        alg=defaults.alg if alg is None else alg,  # type: ignore[arg-type]
    )


def _service_totp_defaults(service: Service) -> totp.TotpConfig:
    configured = service.totp
    return totp.TotpConfig(
        time_step=configured.get("time_step") or totp.DEFAULT.time_step,
        skew=totp.DEFAULT.skew if configured.get("skew") is None else configured["skew"],
        code_length=configured.get("code_length") or totp.DEFAULT.code_length,
        alg=configured.get("alg") or totp.DEFAULT.alg,
    )


async def _count_creation(caller: Caller, identity: str, now: datetime) -> None:
    """At most MAX_CREATIONS_PER_DAY factor creations per entity per UTC day (429 / 60326)."""
    key = (
        f"{constants.FACTOR_CREATIONS_PREFIX}{caller.service.sid}:{identity}:"
        f"{now.strftime('%Y%m%d')}"
    )
    async with caller.services.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 2 * 86400)
        count, _ = await pipe.execute()
    if int(count) > MAX_CREATIONS_PER_DAY:
        raise TwilioError(429, 60326, "Too many factor creations for this entity today")


async def create_factor(request: web.Request) -> web.Response:
    token = _token_password(request)
    enrolment: AccessToken | None = None
    if token is None:
        caller = await _caller(request)
    else:
        caller, enrolment = await _enrolment(request, token)
    identity = _identity(request)
    if not IDENTITY.fullmatch(identity):
        raise _bad_identity()
    form = await read_form(request)
    friendly = form.text("FriendlyName", max_len=64) or (
        enrolment.factor_friendly_name if enrolment else None
    )
    if friendly is None:
        raise invalid("FriendlyName")
    factor_type = form.text("FactorType", required=True, max_len=16)
    if factor_type not in {"push", "totp"} or (enrolment is not None and factor_type != "push"):
        raise invalid("FactorType")
    now = utcnow()
    config: dict[str, Any]
    binding: dict[str, Any]
    shown: dict[str, Any]
    metadata: dict[str, Any] | None = None
    if factor_type == "push":
        if form.text("Binding.Alg", required=True, max_len=16) != push.ALG:
            raise invalid("Binding.Alg")
        public_key = form.text("Binding.PublicKey", required=True, max_len=1024)
        assert public_key is not None
        try:
            push.load_public_key(public_key)
        except ValueError:
            raise invalid("Binding.PublicKey") from None
        platform = _push_platform(form, required=True)
        notification_token = form.text("Config.NotificationToken", max_len=255)
        if notification_token is not None and len(notification_token) < 32:
            raise invalid("Config.NotificationToken")
        if platform != "none" and notification_token is None:
            raise invalid("Config.NotificationToken")
        config = {
            "sdk_version": form.text("Config.SdkVersion", max_len=64),
            "app_id": form.text("Config.AppId", max_len=100),
            "notification_platform": platform,
            "notification_token": notification_token,
            "credential_sid": new_sid("CR"),
        }
        metadata = _json_strings(form, "Metadata")
        binding = {"alg": push.ALG, "public_key": public_key}
        shown = dict(binding)
    else:
        settings = _totp_config(form, _service_totp_defaults(caller.service))
        given = form.text("Binding.Secret", max_len=256)
        secret = totp.new_secret() if given is None else totp.normalize_secret(given)
        if secret is None:
            raise invalid("Binding.Secret")
        issuer = caller.service.totp.get("issuer") or caller.service.friendly_name
        config = settings.as_config()
        binding = {"secret": caller.services.tools.seal(secret)}
        shown = {
            "secret": secret,
            "uri": totp.provisioning_uri(secret, friendly, issuer, settings),
        }
    entity = await _ensure_entity(caller, identity)
    existing = await caller.store.factors_of(caller.service.sid, identity)
    limit = MAX_PUSH_FACTORS if factor_type == "push" else MAX_TOTP_FACTORS
    if sum(f.factor_type == factor_type for f in existing) >= limit:
        raise TwilioError(400, 60315, f"Maximum {limit} {factor_type} factors per entity reached")
    await _count_creation(caller, identity, now)
    if token is not None:
        # an access token enrols one device: spend it, and lose any race for it
        spent = await caller.services.redis.delete(
            constants.ACCESS_TOKEN_VALUE_PREFIX + _token_hash(token)
        )
        if not spent:
            raise _unauthorized()
    factor = Factor(
        sid=new_sid("YF"),
        account_sid=caller.service.account_sid,
        service_sid=caller.service.sid,
        entity_sid=entity.sid,
        identity=identity,
        friendly_name=friendly,
        factor_type=factor_type,  # type: ignore[arg-type]
        config=config,
        metadata=metadata,
        binding=binding,
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    await caller.store.add_factor(factor, int(now.timestamp() * 1000))
    if factor_type == "push":
        await caller.store.add_credential(config["credential_sid"], factor.sid)
    await events.emit(caller.store.redis, "factor.created", factor)
    return web.json_response(factor_resource(factor, base_url(request), binding=shown), status=201)


async def fetch_factor(request: web.Request) -> web.Response:
    caller = await _caller(request, device=True)
    factor = await _factor(caller, _identity(request), request.match_info["sid"])
    return web.json_response(factor_resource(factor, base_url(request)))


async def list_factors(request: web.Request) -> web.Response:
    caller = await _caller(request)
    entity = await _entity(caller, _identity(request))
    page, size = page_params(request)
    found = await caller.store.factors_of(entity.service_sid, entity.identity)
    chosen = found[page * size : (page + 1) * size]
    items = [factor_resource(f, base_url(request)) for f in chosen]
    return web.json_response(page_body(request, "factors", items, page, size, len(found)))


def _factor_changes(form: Form, factor: Factor) -> dict[str, Any]:
    """The config keys an update sets, validated for the factor's type."""
    changes: dict[str, Any] = {}
    if factor.factor_type == "totp":
        current = totp.TotpConfig.from_config(factor.config)
        changes = {
            k: v
            for k, v in _totp_config(form, current).as_config().items()
            if factor.config[k] != v
        }
        for name in (
            "Config.NotificationToken",
            "Config.SdkVersion",
            "Config.NotificationPlatform",
        ):
            if form.has(name):
                raise invalid(name)
        return changes
    for name in ("Config.TimeStep", "Config.Skew", "Config.CodeLength", "Config.Alg"):
        if form.has(name):
            raise invalid(name)
    notification_token = form.text("Config.NotificationToken", max_len=255)
    if notification_token is not None:
        if len(notification_token) < 32:
            raise invalid("Config.NotificationToken")
        changes["notification_token"] = notification_token
    sdk_version = form.text("Config.SdkVersion", max_len=64)
    if sdk_version is not None:
        changes["sdk_version"] = sdk_version
    platform = _push_platform(form, required=False)
    if platform is not None:
        changes["notification_platform"] = platform
    return changes


def _totp_step(services: Services, factor: Factor, code: str, now: datetime) -> int | None:
    """The step `code` is right for and not yet used on `factor`, else None."""
    secret = services.tools.unseal(factor.binding["secret"])
    config = totp.TotpConfig.from_config(factor.config)
    return totp.accept(secret, code, config, now.timestamp(), factor.last_used_step)


async def update_factor(request: web.Request) -> web.Response:
    """Rename, reconfigure, or verify (AuthPayload) a factor. A wrong AuthPayload answers 200
    with status unverified; after MAX_ATTEMPTS wrong ones, 429 / 60310."""
    caller = await _caller(request, device=True)
    identity = _identity(request)
    sid = request.match_info["sid"]
    factor = await _factor(caller, identity, sid)
    form = await read_form(request)
    auth_payload = form.text("AuthPayload", max_len=_AUTH_PAYLOAD_MAX)
    friendly = form.text("FriendlyName", max_len=64)
    changes = _factor_changes(form, factor)
    verified_now = False
    for _ in range(lifecycle.MAX_CAS_RETRIES):
        now = utcnow()
        visible = False
        if friendly is not None and friendly != factor.friendly_name:
            factor.friendly_name = friendly
            visible = True
        if changes:
            factor.config = {**factor.config, **changes}
            visible = True
        if auth_payload is not None and factor.status == "unverified":
            if factor.attempts >= MAX_ATTEMPTS:
                raise TwilioError(429, 60310, "Max factor verification attempts reached")
            if factor.factor_type == "push":
                ok = push.verify_factor_payload(factor.binding["public_key"], sid, auth_payload)
            else:
                step = _totp_step(caller.services, factor, auth_payload, now)
                ok = step is not None
                if step is not None:
                    factor.last_used_step = step
            if ok:
                factor.status = "verified"
                factor.attempts = 0
                visible = verified_now = True
            else:
                factor.attempts += 1
        if visible:
            factor.date_updated = iso_ms(now)
        event = (
            await events.prepare(caller.store.redis, "factor.verified", factor)
            if verified_now
            else None
        )
        try:
            await caller.store.update_factor(factor, event)
            break
        except StaleWrite:
            factor = await _factor(caller, identity, sid)
            verified_now = False
    else:
        raise _conflict()
    return web.json_response(factor_resource(factor, base_url(request)))


async def delete_factor(request: web.Request) -> web.Response:
    caller = await _caller(request, device=True)
    factor = await _factor(caller, _identity(request), request.match_info["sid"])
    await caller.store.delete_factor(factor)
    await events.emit(caller.store.redis, "factor.deleted", factor)
    return web.Response(status=204)


# ---- challenges ---------------------------------------------------------------------------------


def _expiration(form: Form, now: datetime) -> datetime:
    raw = form.text("ExpirationDate", max_len=64)
    if raw is None:
        return now + DEFAULT_CHALLENGE_TTL
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid("ExpirationDate") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment <= now or moment > now + MAX_CHALLENGE_TTL:
        raise invalid("ExpirationDate")
    return moment


def _detail_fields(form: Form) -> list[dict[str, str]]:
    """The repeated Details.Fields, each a JSON `{"label": …, "value": …}`."""
    fields: list[dict[str, str]] = []
    raw = form.texts("Details.Fields", max_len=_JSON_MAX)
    if len(raw) > _FIELDS_MAX:
        raise invalid("Details.Fields")
    for item in raw:
        try:
            parsed = json.loads(item)
        except (ValueError, RecursionError):
            raise invalid("Details.Fields") from None
        if not isinstance(parsed, dict) or set(parsed) != {"label", "value"}:
            raise invalid("Details.Fields")
        label, value = parsed["label"], parsed["value"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if (
            not isinstance(label, str)
            or not isinstance(value, str)
            or not 0 < len(label) <= _LABEL_MAX
            or len(value) > _VALUE_MAX
        ):
            raise invalid("Details.Fields")
        fields.append({"label": label, "value": value})
    return fields


def _push_ttl(challenge: Challenge, now: datetime, ttl: int = 300) -> int:
    """A push outlives neither its challenge nor five minutes."""
    left = int((lifecycle.parse_time(challenge.expiration_date) - now).total_seconds())
    return max(0, min(ttl, left))


async def create_challenge(request: web.Request) -> web.Response:
    caller = await _caller(request)
    identity = _identity(request)
    form = await read_form(request)
    factor_sid = form.text("FactorSid", required=True, max_len=34, pattern=_FACTOR_SID)
    assert factor_sid is not None
    now = utcnow()
    expiration = _expiration(form, now)
    message = form.text("Details.Message", max_len=256)
    fields = _detail_fields(form)
    hidden = _json_strings(form, "HiddenDetails")
    code = form.text("AuthPayload", max_len=16)
    factor = await _factor(caller, identity, factor_sid)
    if factor.factor_type == "push":
        if message is None:
            raise invalid("Details.Message")
        if code is not None:
            raise invalid("AuthPayload")
    elif factor.factor_type != "totp":
        raise invalid("FactorSid")
    if factor.status != "verified":
        raise TwilioError(403, 60318, "Factor is not verified")
    details: dict[str, Any] = {}
    if factor.factor_type == "push" or message is not None or fields:
        details = {"message": message}
        if factor.factor_type == "push" and caller.service.push.get("include_date"):
            details["date"] = tw_date(now)
        details["fields"] = fields
    challenge = Challenge(
        sid=new_sid("YC"),
        account_sid=factor.account_sid,
        service_sid=factor.service_sid,
        entity_sid=factor.entity_sid,
        identity=identity,
        factor_sid=factor.sid,
        factor_type=factor.factor_type,
        details=details,
        hidden_details=hidden,
        expiration_date=iso_ms(expiration),
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    if code is not None:
        # a TOTP challenge checked on creation: approved now, or pending with one wrong attempt
        if await _consume_code(caller, factor, code, now) is not None:
            challenge.status = "approved"
            challenge.date_responded = iso_ms(now)
        else:
            challenge.attempts = 1
    await caller.store.add_challenge(challenge, int(now.timestamp() * 1000))
    redis = caller.store.redis
    if challenge.status == "pending":
        await lifecycle.schedule_expiry(redis, challenge)
        if challenge.factor_type == "push":
            await lifecycle.enqueue_push(
                redis, challenge.sid, challenge.sid, _push_ttl(challenge, now)
            )
    else:
        await events.emit(redis, "challenge.approved", factor, challenge)
    return _challenge_response(challenge, base_url(request), status=201)


async def _consume_code(caller: Caller, factor: Factor, code: str, now: datetime) -> Factor | None:
    """Accept `code` on a TOTP factor once: the step is recorded before anything is approved."""
    for _ in range(lifecycle.MAX_CAS_RETRIES):
        step = _totp_step(caller.services, factor, code, now)
        if step is None:
            return None
        factor.last_used_step = step
        try:
            await caller.store.update_factor(factor)
            return factor
        except StaleWrite:
            fresh = await caller.store.get_factor(factor.sid)
            if fresh is None:
                return None
            factor = fresh
    raise _conflict()


async def fetch_challenge(request: web.Request) -> web.Response:
    caller = await _caller(request, device=True)
    challenge = await _challenge(caller, _identity(request), request.match_info["sid"])
    return _challenge_response(challenge, base_url(request))


async def list_challenges(request: web.Request) -> web.Response:
    """Oldest first, or newest first with Order=desc; filtered by FactorSid and Status."""
    caller = await _caller(request, device=True)
    identity = _identity(request)
    entity = await _entity(caller, identity)
    query = Form(request.query)
    factor_sid = query.text("FactorSid", max_len=34, pattern=_FACTOR_SID)
    status = query.text("Status", max_len=16)
    if status is not None and status not in {"pending", "expired", "approved", "denied"}:
        raise invalid("Status")
    order = query.text("Order", max_len=8)
    if order is not None and order not in {"asc", "desc"}:
        raise invalid("Order")
    page, size = page_params(request)
    if caller.device is not None:
        if factor_sid is not None and factor_sid != caller.device.sid:
            raise errors.NotFound(factor_sid)
        factor_sid = caller.device.sid
    found = await caller.store.challenges_of(entity.service_sid, entity.identity)
    chosen: list[Challenge] = []
    for challenge in found:
        if factor_sid is not None and challenge.factor_sid != factor_sid:
            continue
        challenge = await lifecycle.expire_if_due(caller.store, challenge)
        if status is not None and challenge.status != status:
            continue
        chosen.append(challenge)
    if order == "desc":
        chosen.reverse()
    items = [
        challenge_resource(c, base_url(request)) for c in chosen[page * size : (page + 1) * size]
    ]
    filters = {
        k: v
        for k, v in {"FactorSid": factor_sid, "Status": status, "Order": order}.items()
        if v is not None and request.query.get(k) is not None
    }
    return web.json_response(_page(request, "challenges", items, page, size, len(chosen), filters))


def _check_open(challenge: Challenge) -> None:
    if challenge.status == "expired":
        raise _expired()
    if challenge.status != "pending":
        raise _responded()


async def update_challenge(request: web.Request) -> web.Response:
    """Answer a challenge: a push one with the device-signed JWT (403 / 60324 when it does not
    verify), a TOTP one with a code (a wrong or replayed code leaves it pending, 200)."""
    caller = await _caller(request, device=True)
    identity = _identity(request)
    sid = request.match_info["sid"]
    challenge = await _challenge(caller, identity, sid)
    form = await read_form(request)
    auth_payload = form.text("AuthPayload", max_len=_AUTH_PAYLOAD_MAX)
    metadata = _json_strings(form, "Metadata")
    base = base_url(request)
    code_used = False
    for _ in range(lifecycle.MAX_CAS_RETRIES):
        _check_open(challenge)
        if auth_payload is None:
            raise invalid("AuthPayload")
        # guessable TOTP codes are limited; an ES256 signature cannot be guessed, so failed push
        # answers are refused (60324) without locking the device's real answer out
        if challenge.factor_type == "totp" and challenge.attempts >= MAX_ATTEMPTS:
            raise TwilioError(429, 60308, "Max challenge verification attempts reached")
        factor = await caller.store.get_factor(challenge.factor_sid)
        if factor is None or factor.status != "verified":
            raise _verification_failed()
        now = utcnow()
        outcome: str | None
        if challenge.factor_type == "push":
            outcome = push.verify_approval(
                auth_payload, factor.binding["public_key"], challenge_resource(challenge, base)
            )
        elif code_used or await _consume_code(caller, factor, auth_payload, now) is not None:
            code_used = True
            outcome = "approved"
        else:
            outcome = None
        if outcome is None and challenge.factor_type == "push":
            raise _verification_failed()
        if outcome is None:
            # counted, but invisible (like every failed answer, it moves no date)
            challenge.attempts += 1
        else:
            challenge.status = "approved" if outcome == "approved" else "denied"
            challenge.date_responded = challenge.date_updated = iso_ms(now)
            if metadata is not None:
                challenge.metadata = metadata
        event = (
            None
            if outcome is None
            else await events.prepare(
                caller.store.redis, f"challenge.{challenge.status}", factor, challenge
            )
        )
        try:
            await caller.store.update_challenge(challenge, event)
        except StaleWrite:
            challenge = await _challenge(caller, identity, sid)
            continue
        if outcome is None:
            return _challenge_response(challenge, base)
        await lifecycle.cancel_expiry(caller.store.redis, challenge.sid)
        return _challenge_response(challenge, base)
    raise _conflict()


# ---- notifications ------------------------------------------------------------------------------


async def create_notification(request: web.Request) -> web.Response:
    """Send a pending push challenge's notification again (Ttl 0-300 seconds, default 300)."""
    caller = await _caller(request)
    identity = _identity(request)
    form = await read_form(request)
    ttl = form.integer("Ttl", 0, 300)
    challenge = await _challenge(caller, identity, request.match_info["challenge_sid"])
    if challenge.factor_type != "push":
        raise invalid("ChallengeSid")
    _check_open(challenge)
    now = utcnow()
    sid = new_sid("NT")
    effective = _push_ttl(challenge, now, 300 if ttl is None else ttl)
    await lifecycle.enqueue_push(caller.store.redis, challenge.sid, sid, effective)
    body = {
        "sid": sid,
        "account_sid": challenge.account_sid,
        "service_sid": challenge.service_sid,
        "entity_sid": challenge.entity_sid,
        "identity": challenge.identity,
        "challenge_sid": challenge.sid,
        "priority": "high",
        "ttl": 300 if ttl is None else ttl,
        "date_created": tw_date(now),
    }
    return web.json_response(body, status=201)


def setup_routes(app: web.Application) -> None:
    r = app.router
    entities = "/v2/Services/{service_sid}/Entities"
    entity = entities + "/{identity}"
    r.add_post("/v2/Services/{service_sid}/AccessTokens", create_access_token)
    r.add_get("/v2/Services/{service_sid}/AccessTokens/{sid}", fetch_access_token)
    r.add_get(entities, list_entities)
    r.add_post(entities, create_entity)
    r.add_get(entity, fetch_entity)
    r.add_delete(entity, delete_entity)
    r.add_get(entity + "/Factors", list_factors)
    r.add_post(entity + "/Factors", create_factor)
    r.add_get(entity + "/Factors/{sid}", fetch_factor)
    r.add_post(entity + "/Factors/{sid}", update_factor)
    r.add_delete(entity + "/Factors/{sid}", delete_factor)
    r.add_get(entity + "/Challenges", list_challenges)
    r.add_post(entity + "/Challenges", create_challenge)
    r.add_get(entity + "/Challenges/{sid}", fetch_challenge)
    r.add_post(entity + "/Challenges/{sid}", update_challenge)
    r.add_post(entity + "/Challenges/{challenge_sid}/Notifications", create_notification)
