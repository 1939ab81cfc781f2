"""The silent-auth check URL: the device's hops through the operator, ending in its code."""

from __future__ import annotations

import hmac
from datetime import timedelta
from urllib.parse import urlencode

from aiohttp import web

from orchestrator import constants
from orchestrator.domain import errors, policy, transition
from orchestrator.domain.events import DeviceResult
from orchestrator.domain.models import Channel, Status, StepStatus, Verification
from orchestrator.handoff import state as handoff
from orchestrator.handoff import token as handoff_token
from orchestrator.http.keys import SERVICES
from orchestrator.operators.base import DeviceOutcome, Operator, OperatorUnavailable
from orchestrator.services import Services
from orchestrator.timefmt import utcnow

__all__ = ["setup_routes"]


def _rid(request: web.Request) -> str:
    """Vonage request ids are UUIDs (case-insensitive); Twilio's are VE sids (kept as they are)."""
    value = request.match_info["request_id"][:64]
    return value if value.startswith("VE") else value.lower()


async def _pending_silent_step(services: Services, request_id: str) -> Verification:
    loaded = await services.store.load(request_id)
    if loaded is None or loaded[0].status is not Status.PENDING:
        raise errors.NotFound(request_id)
    v = loaded[0]
    step = v.step
    if (
        step is None
        or step.channel is not Channel.SILENT_AUTH
        or step.status is not StepStatus.PENDING
    ):
        raise errors.SessionUsed()
    return v


async def redirect(request: web.Request) -> web.Response:
    """First hop: the device arrives from the check URL; send it on to its operator."""
    services = request.app[SERVICES]
    request_id = _rid(request)
    v = await _pending_silent_step(services, request_id[:64])
    step = v.step
    assert step is not None and step.initiated_at is not None
    if utcnow() - step.initiated_at > timedelta(seconds=policy.SA_SESSION_TTL):
        raise errors.NotFound(request_id)
    # single use: the first device to open the URL owns the session
    used_key = f"{constants.SA_SESSION_PREFIX}{request_id}:{v.current}"
    if not await services.redis.set(used_key, b"1", nx=True, ex=policy.SA_SESSION_TTL):
        raise errors.SessionUsed()
    if "handoff" in request.query:
        # the desktop handoff's phone page: the callback ends on its result page
        await handoff.note_device(
            services.redis, services.tools, request_id, v.current, request.query["handoff"]
        )
    assert v.sa_session is not None
    operator = services.operators.for_number(step.to)
    if operator is None:
        return await _settle(services, v, DeviceOutcome("failed", "no_operator"))
    try:
        target = await operator.authorize_url(
            msisdn=step.to, state=v.sa_session, redirect_uri=_callback_url(services, request_id)
        )
    except OperatorUnavailable as exc:
        return await _settle(services, v, DeviceOutcome("failed", exc.reason))
    raise web.HTTPFound(target)


def _callback_url(services: Services, request_id: str) -> str:
    """The last hop's URL; the token call repeats it exactly, so both hops build it here."""
    public = services.settings.public_url.rstrip("/")
    return f"{public}/v2/verify/{request_id}/silent-auth/callback"


async def callback(request: web.Request) -> web.Response:
    """Last hop: the operator sends the device back with a one-time code (or an OAuth error);
    settle the step."""
    services = request.app[SERVICES]
    request_id = _rid(request)[:64]
    v = await _pending_silent_step(services, request_id)
    step = v.step
    assert step is not None
    state = request.query.get("state", "")
    if v.sa_session is None or not hmac.compare_digest(state.encode(), v.sa_session.encode()):
        raise errors.SessionUsed()
    operator = services.operators.for_number(step.to)
    if operator is None:
        result = DeviceOutcome("failed", "no_operator")
    elif "error" in request.query:
        result = operator.outcome_for_error(
            request.query["error"], request.query.get("error_description", "")
        )
    else:
        result = await operator.exchange(
            request.query.get("code", ""),
            step.to,
            state=state,
            redirect_uri=_callback_url(services, request_id),
        )
    return await _settle(services, v, result, operator)


async def _settle(
    services: Services, v: Verification, result: DeviceOutcome, operator: Operator | None = None
) -> web.Response:
    """Apply the device's outcome and answer the device: its code (JSON, the redirect_url's
    fragment, Twilio's result string) or the failure (412, or the redirect_url's fragment);
    a device that came through the desktop handoff ends on its result page either way."""
    request_id = v.request_id
    step = v.step
    assert step is not None
    now = utcnow()
    index = v.current
    redirect_url = step.options.get("redirect_url")
    via_handoff = await handoff.came_from_handoff(services.redis, request_id, index)
    done = handoff_token.done_url(services.settings.public_url, services.tools, request_id)
    event = DeviceResult(index, result.outcome, result.reason)
    try:
        t = await services.store.apply(
            request_id,
            None,
            lambda cur: transition.transition(cur, event, now, services.tools),
            now,
        )
    except errors.SilentAuthFailed as exc:
        if via_handoff:
            raise web.HTTPFound(done) from None
        if redirect_url:
            raise web.HTTPFound(
                f"{redirect_url}#{urlencode({'error_description': exc.reason})}"
            ) from None
        raise
    assert t.issued_code is not None
    if via_handoff:
        # the code goes to the desktop (the handoff token's holder), never to the phone
        await handoff.stash_code(services.redis, services.tools, request_id, t.issued_code)
        raise web.HTTPFound(done)
    if v.dialect == "twilio":
        # Twilio's SNA clients read a result string; the backend then checks without a code
        carrier = (operator.name if operator is not None else "").replace("&", " ")
        return web.Response(text=f"ErrorCode=0&ErrorDescription=Success&Carrier={carrier}")
    if redirect_url:
        fragment = urlencode({"request_id": request_id, "code": t.issued_code})
        raise web.HTTPFound(f"{redirect_url}#{fragment}")
    return web.json_response({"request_id": request_id, "code": t.issued_code})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/verify/{request_id}/silent-auth/redirect", redirect)
    app.router.add_get("/v2/verify/{request_id}/silent-auth/callback", callback)
