"""The handoff's routes under /v2/verify/{request_id}/handoff, each behind the handoff token.

GET  …/handoff?t=          the desktop page (QR code, "text me a link", live status)
GET  …/handoff/events?t=   the status as server-sent events, until the verification ends
GET  …/handoff/status?t=   the same status as one JSON object (the page's polling fallback)
POST …/handoff/sms?t=      text the phone page's link to the number (2 per verification)
GET  …/handoff/phone?t=    the phone page: one button into the silent-auth check URL (phone token)
GET  …/handoff/done?t=     where the phone lands after the operator's last hop (phone token)

The status object: {"request_id", "state"} with state one of waiting, verified, failed,
fallback (the workflow moved on to `next_channel`) or ended; a verified Vonage verification
adds "code" (the device's code, as the phone would have got it) and, when the step has a
redirect_url, "redirect" (that URL with #request_id=…&code=…). Only the desktop token's holder
sees it: the phone and done pages take the phone's token (orchestrator.handoff.token).

How the desktop resumes once verified: with a redirect_url it navigates there (exactly the
fragment the phone would have got without the handoff). Without one it posts
`{"type": "verify-handoff", "request_id": …, "status": "verified", "code": …}` ("code" absent
for Twilio verifications, whose check needs none) to `window.opener`, else to `window.parent`
when framed, and dispatches the same object as a `verify-handoff` CustomEvent on `document`.
The target origin is the `origin` query parameter the embedding page may append to the
handoff_url (`&origin=https://shop.example`, scheme://host[:port]), else "*"; appending it is
recommended. The page then checks the code through its backend as usual.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from orchestrator import constants
from orchestrator.domain import errors
from orchestrator.domain.models import Channel, Status, Step, StepStatus, Verification
from orchestrator.engine import jobs
from orchestrator.handoff import pages, state, token
from orchestrator.http.keys import SERVICES
from orchestrator.services import Services
from orchestrator.timefmt import utcnow

__all__ = ["SEND_HANDOFF_LINK", "setup_routes", "status_of"]

SEND_HANDOFF_LINK = "send_handoff_link"  # the worker's job (workers/handoff.py)
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
# a stream is closed after this long (EventSource reconnects by itself): a shutdown never
# waits on a forgotten tab for more than this
STREAM_SECONDS = 300.0
TERMINAL = frozenset({"verified", "failed", "fallback", "ended"})
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


def _rid(request: web.Request) -> str:
    """Vonage request ids are UUIDs (case-insensitive); Twilio's are VE sids (kept as they are)."""
    value = request.match_info["request_id"][:64]
    return value if value.startswith("VE") else value.lower()


def _silent_step(v: Verification) -> Step | None:
    """The silent-auth step the handoff is about: the one in progress, else the first."""
    for step in (v.step, v.steps[0] if v.steps else None):
        if step is not None and step.channel is Channel.SILENT_AUTH:
            return step
    return None


async def _authorized(
    request: web.Request, audience: token.Audience = "desktop"
) -> tuple[Services, str, Verification] | None:
    """The verification behind a valid token of `audience`, or None (the caller answers 404)."""
    services = request.app[SERVICES]
    request_id = _rid(request)
    if not token.valid(services.tools, request_id, request.query.get("t", ""), audience):
        return None
    loaded = await services.store.load(request_id)
    if loaded is None or _silent_step(loaded[0]) is None:
        return None
    return services, request_id, loaded[0]


async def _api_authorized(request: web.Request) -> tuple[Services, str, Verification]:
    found = await _authorized(request)
    if found is None:
        raise errors.NotFound(_rid(request))
    return found


async def status_of(services: Services, v: Verification) -> dict[str, Any]:
    """Where the verification stands, as the desktop page shows it."""
    step = _silent_step(v)
    body: dict[str, Any] = {"request_id": v.request_id}
    verified = v.sa_verified or v.status is Status.COMPLETED
    if step is not None and verified and v.status in (Status.PENDING, Status.COMPLETED):
        body["state"] = "verified"
        code = None
        if v.dialect != "twilio" and v.status is Status.PENDING:
            code = await state.take_code(services.redis, services.tools, v.request_id)
        if code is not None:
            body["code"] = code
            redirect_url = step.options.get("redirect_url")
            if isinstance(redirect_url, str) and redirect_url:
                fragment = urlencode({"request_id": v.request_id, "code": code})
                body["redirect"] = f"{redirect_url}#{fragment}"
        return body
    current = v.step
    if v.status is Status.PENDING and current is not None and current is step:
        body["state"] = "waiting" if step.status is StepStatus.PENDING else "failed"
    elif v.status is Status.PENDING and current is not None:
        body["state"] = "fallback"
        body["next_channel"] = current.channel.value
    elif v.status is Status.FAILED:
        body["state"] = "failed"
    else:
        body["state"] = "ended"
    return body


def _urls(services: Services, request_id: str) -> tuple[str, str]:
    public = services.settings.public_url
    return token.desktop_url(public, services.tools, request_id), token.phone_url(
        public, services.tools, request_id
    )


def _sibling(desktop_url: str, leaf: str) -> str:
    """…/handoff?t=X -> …/handoff/<leaf>?t=X"""
    base, _, query = desktop_url.partition("?")
    return f"{base}/{leaf}?{query}"


def _origin(request: web.Request) -> str:
    """Where postMessage may deliver the result: the `origin` the embedding page appended to
    the handoff URL, else any (only the token's holder can open the page at all)."""
    value = request.query.get("origin", "")
    return value if _ORIGIN.match(value) else "*"


async def desktop(request: web.Request) -> web.Response:
    found = await _authorized(request)
    if found is None:
        return pages.not_found_page()
    services, request_id, v = found
    desktop_url, phone_url = _urls(services, request_id)
    now_state = (await status_of(services, v))["state"]
    sent = int(await services.redis.get(state.SMS_COUNT + request_id) or 0)
    return pages.desktop_page(
        v.locale,
        phone_url=phone_url,
        events_url=_sibling(desktop_url, "events"),
        status_url=_sibling(desktop_url, "status"),
        sms_url=_sibling(desktop_url, "sms"),
        origin=_origin(request),
        state=now_state,
        sms_left=state.MAX_SMS - sent,
    )


async def status(request: web.Request) -> web.Response:
    services, _, v = await _api_authorized(request)
    return web.json_response(await status_of(services, v), headers={"Cache-Control": "no-store"})


def _event(body: dict[str, Any]) -> bytes:
    return f"event: status\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    """The status on every change (re-read each second), a comment every 15 s to keep proxies
    from closing the stream, and the end of the stream once the status is final."""
    services, request_id, v = await _api_authorized(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        await _stream(request, response, services, request_id, v)
    except ConnectionResetError:
        pass  # the page went away: nothing to tell anyone
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    services: Services,
    request_id: str,
    v: Verification,
) -> None:
    await response.write(b"retry: 2000\n\n")
    started = last_write = time.monotonic()
    last: dict[str, Any] | None = None
    current: Verification | None = v
    while True:
        body = (
            await status_of(services, current)
            if current is not None
            else {"request_id": request_id, "state": "ended"}
        )
        now = time.monotonic()
        if body != last:
            await response.write(_event(body))
            last, last_write = body, now
        elif now - last_write >= KEEPALIVE_SECONDS:
            await response.write(b": keepalive\n\n")
            last_write = now
        if body["state"] in TERMINAL or now - started >= STREAM_SECONDS:
            break
        await asyncio.sleep(POLL_SECONDS)
        transport = request.transport
        if transport is None or transport.is_closing():
            return  # the page went away: stop reading Redis for it
        loaded = await services.store.load(request_id)
        current = loaded[0] if loaded is not None else None
    await response.write_eof()


async def send_link(request: web.Request) -> web.Response:
    """Queue one SMS with the phone page's link to the silent-auth step's number."""
    services, request_id, v = await _api_authorized(request)
    step = _silent_step(v)
    if (
        step is None
        or v.status is not Status.PENDING
        or v.step is not step
        or step.status is not StepStatus.PENDING
    ):
        raise errors.SessionUsed()
    n = await state.count_sms(services.redis, request_id)
    if n > state.MAX_SMS:
        raise errors.RateLimited("handoff links")
    now_ms = int(utcnow().timestamp() * 1000)
    job_id = f"handoff:{request_id}:{n}"
    # the same record the store writes for its jobs (orchestrator.engine.jobs), so the workers'
    # JSON deserializer reads it; then a wake-up, as the store publishes for its sends
    record = jobs.serialize_job(SEND_HANDOFF_LINK, [request_id, n], now_ms)
    async with services.redis.pipeline(transaction=True) as pipe:
        pipe.set(jobs.job_key(job_id), record, nx=True, px=jobs.EXPIRES_EXTRA_MS)
        pipe.zadd(jobs.QUEUE, {job_id: now_ms})
        pipe.publish(constants.WAKE_CHANNEL, "1")
        await pipe.execute()
    return web.json_response(
        {"request_id": request_id, "sent": n, "remaining": state.MAX_SMS - n}, status=202
    )


async def phone(request: web.Request) -> web.Response:
    found = await _authorized(request, "phone")
    if found is None:
        return pages.not_found_page()
    services, request_id, v = found
    public = services.settings.public_url.rstrip("/")
    check_url = f"{public}/v2/verify/{request_id}/silent-auth/redirect"
    body = await status_of(services, v)
    return pages.phone_page(
        v.locale,
        check_url=check_url,
        marker=token.token(services.tools, request_id, "phone"),
        state=body["state"],
    )


async def done(request: web.Request) -> web.Response:
    found = await _authorized(request, "phone")
    if found is None:
        return pages.not_found_page()
    services, _, v = found
    body = await status_of(services, v)
    return pages.done_page(v.locale, state=body["state"])


def setup_routes(app: web.Application) -> None:
    base = "/v2/verify/{request_id}/handoff"
    app.router.add_get(base, desktop)
    app.router.add_get(f"{base}/events", events)
    app.router.add_get(f"{base}/status", status)
    app.router.add_post(f"{base}/sms", send_link)
    app.router.add_get(f"{base}/phone", phone)
    app.router.add_get(f"{base}/done", done)
