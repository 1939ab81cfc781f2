"""`/console`: the operations console's routes (a route module: nothing imports it but the app
factory). Pages in orchestrator/console/pages.py, reads in queries.py, who may look in auth.py.

GET  /console                       recent verifications (filters: status, destination, tenant)
GET  /console/v/{request_id}        one verification: events, messages, webhook attempts
POST /console/webhooks/{id}/replay  replay a dead-lettered webhook message (CSRF token)
GET  /console/login, POST …         the sign-in form (sets the session cookie)
POST /console/logout                ends the session

Nothing is served without credentials: a browser without them is sent to the sign-in form, a
wrong Authorization header is a 401. Bad query values are a 400 page, never a 500.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from orchestrator import constants
from orchestrator.console import auth, pages, queries
from orchestrator.console.auth import Viewer
from orchestrator.domain.models import Status
from orchestrator.engine import outbox, webhook_admin
from orchestrator.http.keys import DELIVERY, SERVICES
from orchestrator.tenants.verify_services import list_services

__all__ = ["setup_routes"]

_TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,160}")
_MAX_DESTINATION = 320
_APPS_LISTED = 200
_OUTCOMES = {
    "replayed": ("The webhook was queued for delivery again.", ""),
    "replayed-dropped": (
        "The webhook was queued again, but its application's status URL is disabled or gone: "
        "the replay will be dropped until the URL is enabled.",
        "",
    ),
    "not-failed": ("", "That message is not dead-lettered (already replayed or delivered)."),
    "expired": ("", "That message outlived its retention; it was taken off the failed list."),
    "busy": ("", "The message changed while replaying it; try again."),
}


class BadQuery(Exception):
    """A query value the console cannot use; its text is shown to the caller."""


async def _viewer(request: web.Request) -> Viewer:
    viewer = await auth.identify(request)
    if viewer is None:
        raise web.HTTPSeeOther("/console/login")
    return viewer


def _filters(request: web.Request) -> queries.Filters:
    q = request.query
    status = None
    raw_status = q.get("status", "")
    if raw_status:
        try:
            status = Status(raw_status)
        except ValueError:
            raise BadQuery("status must be one of " + ", ".join(s.value for s in Status)) from None
    destination = q.get("destination", "").strip()
    if len(destination) > _MAX_DESTINATION:
        raise BadQuery("destination is too long")
    normalized = outbox.destination_key(destination) if destination else ""
    tenant = q.get("tenant", "").strip()
    if tenant and not _TENANT.fullmatch(tenant):
        raise BadQuery("tenant must be an application id or a service sid")
    before = q.get("before", "")
    if before and (not before.isdigit() or len(before) > 16):
        raise BadQuery("before must be a time in milliseconds")
    return queries.Filters(
        status=status,
        destination=normalized or None,
        tenant=tenant or None,
        before_ms=int(before) if before else None,
    )


async def _tenants(request: web.Request, viewer: Viewer) -> dict[str, str]:
    """The applications and services the viewer may pick in the filter (id -> name)."""
    redis = request.app[SERVICES].redis
    found = await queries.app_names(redis, viewer.account, _APPS_LISTED)
    if viewer.account is not None:
        services, _ = await list_services(redis, viewer.account, 0, _APPS_LISTED)
        found.update({s.sid: s.friendly_name for s in services})
    return found


async def index_page(request: web.Request) -> web.StreamResponse:
    viewer = await _viewer(request)
    services = request.app[SERVICES]
    csrf = auth.csrf_token(services, viewer)
    try:
        filters = _filters(request)
    except BadQuery as exc:
        return pages.error_page(400, "Bad filter", str(exc), viewer.label, csrf)
    scope = queries.Scope(viewer.account)
    page = await queries.recent(services.redis, scope, filters, delivery=request.app.get(DELIVERY))
    names: dict[str, str] = {}
    for tenant in dict.fromkeys(r.v.tenant for r in page.rows):
        names[tenant] = await queries.tenant_name(services.redis, tenant)
    tenants = await _tenants(request, viewer)
    for tenant, name in names.items():
        tenants.setdefault(tenant, name)
    return pages.list_page(page, filters, names, tenants, viewer.label, csrf)


async def verification_page(request: web.Request) -> web.StreamResponse:
    viewer = await _viewer(request)
    services = request.app[SERVICES]
    csrf = auth.csrf_token(services, viewer)
    rid = request.match_info["request_id"]
    found = None
    if _REQUEST_ID.fullmatch(rid):
        found = await queries.detail(
            services.redis,
            services.store,
            queries.Scope(viewer.account),
            rid,
            services.settings.sandbox,
            len(services.settings.webhook_retry_schedule),
            request.app.get(DELIVERY),
        )
    if found is None:
        return pages.error_page(404, "Not found", "No such verification.", viewer.label, csrf)
    notice, problem = _OUTCOMES.get(request.query.get("done", ""), ("", ""))
    return pages.detail_page(found, viewer.label, csrf, notice, problem)


async def _form(request: web.Request) -> dict[str, str]:
    """The form's text fields (files and anything unreadable ignored)."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {}
    try:
        data = await request.post()
    except ValueError:
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


async def replay(request: web.Request) -> web.StreamResponse:
    viewer = await auth.identify(request)
    if viewer is None:
        raise web.HTTPSeeOther("/console/login")
    services = request.app[SERVICES]
    csrf = auth.csrf_token(services, viewer)
    form = await _form(request)
    if not auth.check_csrf(request, viewer, form.get("csrf", "")):
        return pages.error_page(
            403, "Forbidden", "The form expired; reload the page.", viewer.label, csrf
        )
    mid = request.match_info["message_id"]
    record = None
    if _MESSAGE_ID.fullmatch(mid):
        record = await services.redis.hgetall(constants.WEBHOOK_PREFIX + mid)  # type: ignore[misc]
    tenant = record.get(b"tenant", b"").decode() if record else ""
    if not record or (
        viewer.account is not None
        and await queries.tenant_account(services.redis, tenant) != viewer.account
    ):
        return pages.error_page(404, "Not found", "No such webhook message.", viewer.label, csrf)
    rid = record.get(b"request_id", b"").decode()
    done = await webhook_admin.replay(services.redis, mid, int(time.time() * 1000))
    if done.job_id is not None:
        outcome = "replayed-dropped" if done.warning else "replayed"
    elif done.problem and "expired" in done.problem:
        outcome = "expired"
    elif done.problem and "contention" in done.problem:
        outcome = "busy"
    else:
        outcome = "not-failed"
    target = f"/console/v/{rid}" if _REQUEST_ID.fullmatch(rid) else "/console"
    raise web.HTTPSeeOther(f"{target}?done={outcome}")


def _cookie(request: web.Request, response: web.StreamResponse, value: str, age: int) -> None:
    response.set_cookie(
        auth.COOKIE,
        value,
        max_age=age,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=request.secure or request.app[SERVICES].settings.public_url.startswith("https:"),
    )


async def login_form(request: web.Request) -> web.StreamResponse:
    operator = auth.configured_token(request.app[SERVICES]) is not None
    return pages.login_page(operator=operator)


async def login(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    operator = auth.configured_token(services) is not None
    if not auth.check_csrf(request, None, ""):
        return pages.login_page("Sign in from this site's own page.", 403, operator)
    form = await _form(request)
    token = form.get("token", "")
    if token:
        cookie = await auth.login_operator(request, token)
    else:
        sid = form.get("account_sid", "").strip()
        cookie = await auth.login_account(request, sid, form.get("auth_token", ""))
    if cookie is None:
        return pages.login_page("Those credentials were not accepted.", 401, operator)
    response = web.HTTPSeeOther("/console")
    _cookie(request, response, cookie, auth.SESSION_SECONDS)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    viewer = await auth.identify(request)
    form = await _form(request)
    if viewer is not None and not auth.check_csrf(request, viewer, form.get("csrf", "")):
        return pages.error_page(403, "Forbidden", "The form expired; reload the page.")
    response = web.HTTPSeeOther("/console/login")
    response.del_cookie(auth.COOKIE, path="/console")
    return response


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/console", index_page)
    app.router.add_get("/console/v/{request_id}", verification_page)
    app.router.add_post("/console/webhooks/{message_id}/replay", replay)
    app.router.add_get("/console/login", login_form)
    app.router.add_post("/console/login", login)
    app.router.add_post("/console/logout", logout)
