"""Factors (push and TOTP): create, verify, fetch, list, update and delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from orchestrator import constants
from orchestrator.dialects.twilio.context import base_url, read_form
from orchestrator.dialects.twilio.factors.access_tokens import (
    AccessToken,
    enrolment_for,
    token_hash,
)
from orchestrator.dialects.twilio.factors.common import (
    AUTH_PAYLOAD_MAX,
    IDENTITY,
    JSON_MAX,
    MAX_ATTEMPTS,
    MAX_CREATIONS_PER_DAY,
    MAX_PUSH_FACTORS,
    MAX_TOTP_FACTORS,
    Caller,
    bad_identity,
    caller_for,
    conflict,
    ensure_entity,
    factor_resource,
    find_entity,
    find_factor,
    identity_of,
    token_password,
    unauthorized,
)
from orchestrator.dialects.twilio.forms import Form, invalid
from orchestrator.dialects.twilio.pages import page_body, page_params
from orchestrator.dialects.twilio.wire import TwilioError
from orchestrator.factors import events, lifecycle, push, totp
from orchestrator.factors.models import Factor
from orchestrator.factors.store import StaleWrite
from orchestrator.services import Services
from orchestrator.tenants.accounts import new_sid
from orchestrator.tenants.verify_services import Service
from orchestrator.timefmt import iso_ms, utcnow

__all__ = [
    "create_factor",
    "delete_factor",
    "fetch_factor",
    "json_strings",
    "list_factors",
    "totp_step",
    "update_factor",
]


# ---- factors ------------------------------------------------------------------------------------


def json_strings(form: Form, name: str) -> dict[str, Any] | None:
    """A JSON object parameter with string values, at most 1024 characters."""
    raw = form.text(name, max_len=JSON_MAX)
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
    token = token_password(request)
    enrolment: AccessToken | None = None
    if token is None:
        caller = await caller_for(request)
    else:
        caller, enrolment = await enrolment_for(request, token)
    identity = identity_of(request)
    if not IDENTITY.fullmatch(identity):
        raise bad_identity()
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
        metadata = json_strings(form, "Metadata")
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
    entity = await ensure_entity(caller, identity)
    existing = await caller.store.factors_of(caller.service.sid, identity)
    limit = MAX_PUSH_FACTORS if factor_type == "push" else MAX_TOTP_FACTORS
    if sum(f.factor_type == factor_type for f in existing) >= limit:
        raise TwilioError(400, 60315, f"Maximum {limit} {factor_type} factors per entity reached")
    await _count_creation(caller, identity, now)
    if token is not None:
        # an access token enrols one device: spend it, and lose any race for it
        spent = await caller.services.redis.delete(
            constants.ACCESS_TOKEN_VALUE_PREFIX + token_hash(token)
        )
        if not spent:
            raise unauthorized()
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
    caller = await caller_for(request, device=True)
    factor = await find_factor(caller, identity_of(request), request.match_info["sid"])
    return web.json_response(factor_resource(factor, base_url(request)))


async def list_factors(request: web.Request) -> web.Response:
    caller = await caller_for(request)
    entity = await find_entity(caller, identity_of(request))
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


def totp_step(services: Services, factor: Factor, code: str, now: datetime) -> int | None:
    """The step `code` is right for and not yet used on `factor`, else None."""
    secret = services.tools.unseal(factor.binding["secret"])
    config = totp.TotpConfig.from_config(factor.config)
    return totp.accept(secret, code, config, now.timestamp(), factor.last_used_step)


async def update_factor(request: web.Request) -> web.Response:
    """Rename, reconfigure, or verify (AuthPayload) a factor. A wrong AuthPayload answers 200
    with status unverified; after MAX_ATTEMPTS wrong ones, 429 / 60310."""
    caller = await caller_for(request, device=True)
    identity = identity_of(request)
    sid = request.match_info["sid"]
    factor = await find_factor(caller, identity, sid)
    form = await read_form(request)
    auth_payload = form.text("AuthPayload", max_len=AUTH_PAYLOAD_MAX)
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
                step = totp_step(caller.services, factor, auth_payload, now)
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
            factor = await find_factor(caller, identity, sid)
            verified_now = False
    else:
        raise conflict()
    return web.json_response(factor_resource(factor, base_url(request)))


async def delete_factor(request: web.Request) -> web.Response:
    caller = await caller_for(request, device=True)
    factor = await find_factor(caller, identity_of(request), request.match_info["sid"])
    await caller.store.delete_factor(factor)
    await events.emit(caller.store.redis, "factor.deleted", factor)
    return web.Response(status=204)
