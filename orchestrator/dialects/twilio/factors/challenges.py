"""Challenges: create, fetch, list and answer (push approvals, TOTP codes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from orchestrator.dialects.twilio.context import base_url, read_form
from orchestrator.dialects.twilio.factors.common import (
    AUTH_PAYLOAD_MAX,
    DEFAULT_CHALLENGE_TTL,
    FACTOR_SID,
    FIELDS_MAX,
    JSON_MAX,
    LABEL_MAX,
    MAX_ATTEMPTS,
    MAX_CHALLENGE_TTL,
    VALUE_MAX,
    Caller,
    caller_for,
    challenge_resource,
    challenge_response,
    conflict,
    expired_error,
    find_challenge,
    find_entity,
    find_factor,
    identity_of,
    list_page,
    responded_error,
    verification_failed,
)
from orchestrator.dialects.twilio.factors.factors import json_strings, totp_step
from orchestrator.dialects.twilio.forms import Form, invalid
from orchestrator.dialects.twilio.pages import page_params
from orchestrator.dialects.twilio.wire import TwilioError, tw_date
from orchestrator.domain import errors
from orchestrator.factors import events, lifecycle, push
from orchestrator.factors.models import Challenge, Factor
from orchestrator.factors.store import StaleWrite
from orchestrator.tenants.accounts import new_sid
from orchestrator.timefmt import iso_ms, utcnow

__all__ = [
    "check_open",
    "create_challenge",
    "fetch_challenge",
    "list_challenges",
    "push_ttl",
    "update_challenge",
]


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
    raw = form.texts("Details.Fields", max_len=JSON_MAX)
    if len(raw) > FIELDS_MAX:
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
            or not 0 < len(label) <= LABEL_MAX
            or len(value) > VALUE_MAX
        ):
            raise invalid("Details.Fields")
        fields.append({"label": label, "value": value})
    return fields


def push_ttl(challenge: Challenge, now: datetime, ttl: int = 300) -> int:
    """A push outlives neither its challenge nor five minutes."""
    left = int((lifecycle.parse_time(challenge.expiration_date) - now).total_seconds())
    return max(0, min(ttl, left))


async def create_challenge(request: web.Request) -> web.Response:
    caller = await caller_for(request)
    identity = identity_of(request)
    form = await read_form(request)
    factor_sid = form.text("FactorSid", required=True, max_len=34, pattern=FACTOR_SID)
    assert factor_sid is not None
    now = utcnow()
    expiration = _expiration(form, now)
    message = form.text("Details.Message", max_len=256)
    fields = _detail_fields(form)
    hidden = json_strings(form, "HiddenDetails")
    code = form.text("AuthPayload", max_len=16)
    factor = await find_factor(caller, identity, factor_sid)
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
                redis, challenge.sid, challenge.sid, push_ttl(challenge, now)
            )
    else:
        await events.emit(redis, "challenge.approved", factor, challenge)
    return challenge_response(challenge, base_url(request), status=201)


async def _consume_code(caller: Caller, factor: Factor, code: str, now: datetime) -> Factor | None:
    """Accept `code` on a TOTP factor once: the step is recorded before anything is approved."""
    for _ in range(lifecycle.MAX_CAS_RETRIES):
        step = totp_step(caller.services, factor, code, now)
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
    raise conflict()


async def fetch_challenge(request: web.Request) -> web.Response:
    caller = await caller_for(request, device=True)
    challenge = await find_challenge(caller, identity_of(request), request.match_info["sid"])
    return challenge_response(challenge, base_url(request))


async def list_challenges(request: web.Request) -> web.Response:
    """Oldest first, or newest first with Order=desc; filtered by FactorSid and Status."""
    caller = await caller_for(request, device=True)
    identity = identity_of(request)
    entity = await find_entity(caller, identity)
    query = Form(request.query)
    factor_sid = query.text("FactorSid", max_len=34, pattern=FACTOR_SID)
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
    return web.json_response(
        list_page(request, "challenges", items, page, size, len(chosen), filters)
    )


def check_open(challenge: Challenge) -> None:
    if challenge.status == "expired":
        raise expired_error()
    if challenge.status != "pending":
        raise responded_error()


async def update_challenge(request: web.Request) -> web.Response:
    """Answer a challenge: a push one with the device-signed JWT (403 / 60324 when it does not
    verify), a TOTP one with a code (a wrong or replayed code leaves it pending, 200)."""
    caller = await caller_for(request, device=True)
    identity = identity_of(request)
    sid = request.match_info["sid"]
    challenge = await find_challenge(caller, identity, sid)
    form = await read_form(request)
    auth_payload = form.text("AuthPayload", max_len=AUTH_PAYLOAD_MAX)
    metadata = json_strings(form, "Metadata")
    base = base_url(request)
    code_used = False
    for _ in range(lifecycle.MAX_CAS_RETRIES):
        check_open(challenge)
        if auth_payload is None:
            raise invalid("AuthPayload")
        # guessable TOTP codes are limited; an ES256 signature cannot be guessed, so failed push
        # answers are refused (60324) without locking the device's real answer out
        if challenge.factor_type == "totp" and challenge.attempts >= MAX_ATTEMPTS:
            raise TwilioError(429, 60308, "Max challenge verification attempts reached")
        factor = await caller.store.get_factor(challenge.factor_sid)
        if factor is None or factor.status != "verified":
            raise verification_failed()
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
            raise verification_failed()
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
            challenge = await find_challenge(caller, identity, sid)
            continue
        if outcome is None:
            return challenge_response(challenge, base)
        await lifecycle.cancel_expiry(caller.store.redis, challenge.sid)
        return challenge_response(challenge, base)
    raise conflict()
