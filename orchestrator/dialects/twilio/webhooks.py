"""Twilio Verify v2 Webhook resource (YW…): /v2/Services/{service_sid}/Webhooks[/{sid}]."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from orchestrator.dialects.twilio import webhook_events as twilio_webhooks
from orchestrator.dialects.twilio.context import base_url, read_form, service_for
from orchestrator.dialects.twilio.forms import Form, invalid
from orchestrator.dialects.twilio.pages import page_response
from orchestrator.dialects.twilio.webhook_events import Webhook, webhook_resource
from orchestrator.domain import errors
from orchestrator.security.netguard import UnsafeURL, check_status_url
from orchestrator.services import Services
from orchestrator.tenants.accounts import new_sid
from orchestrator.timefmt import iso_ms, utcnow

__all__ = ["setup_routes"]

_FRIENDLY_NAME_MAX = 64
_URL_MAX = 2048


def _event_types(form: Form, *, required: bool) -> list[str] | None:
    """The repeated EventTypes values, de-duplicated in order; None when absent (update)."""
    values = form.texts("EventTypes", max_len=64)
    if not values:
        if required or form.has("EventTypes"):
            raise invalid("EventTypes")
        return None
    if any(v not in twilio_webhooks.EVENT_TYPES for v in values):
        raise invalid("EventTypes")
    return list(dict.fromkeys(values))


async def _webhook_url(services: Services, form: Form, *, required: bool) -> str | None:
    url = form.text("WebhookUrl", required=required, max_len=_URL_MAX)
    if url is None:
        return None
    try:
        await check_status_url(url, services.settings.webhook_allow_private)
    except UnsafeURL:
        raise invalid("WebhookUrl") from None
    return url


def _choice(form: Form, name: str, allowed: set[str]) -> str | None:
    value = form.text(name, max_len=16)
    if value is not None and value not in allowed:
        raise invalid(name)
    return value


async def create_webhook(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    form = await read_form(request)
    name = form.text("FriendlyName", required=True, max_len=_FRIENDLY_NAME_MAX)
    event_types = _event_types(form, required=True)
    status = _choice(form, "Status", {"enabled", "disabled"})
    version = _choice(form, "Version", {"v1", "v2"})
    url = await _webhook_url(services, form, required=True)
    assert name is not None and event_types is not None and url is not None
    now = utcnow()
    wh = Webhook(
        sid=new_sid("YW"),
        service_sid=service.sid,
        account_sid=service.account_sid,
        friendly_name=name,
        event_types=event_types,
        status="disabled" if status == "disabled" else "enabled",
        version="v1" if version == "v1" else "v2",
        webhook_url=url,
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    await twilio_webhooks.save_webhook(services.redis, wh, int(now.timestamp() * 1000))
    return web.json_response(webhook_resource(wh, base_url(request)), status=201)


async def _webhook(request: web.Request) -> tuple[Services, Webhook]:
    services, service = await service_for(request)
    sid = request.match_info["sid"][:64]
    wh = await twilio_webhooks.get_webhook(services.redis, service.sid, sid)
    if wh is None:
        raise errors.NotFound(sid)
    return services, wh


async def fetch_webhook(request: web.Request) -> web.Response:
    _, wh = await _webhook(request)
    return web.json_response(webhook_resource(wh, base_url(request)))


async def update_webhook(request: web.Request) -> web.Response:
    services, wh = await _webhook(request)
    form = await read_form(request)
    name = form.text("FriendlyName", max_len=_FRIENDLY_NAME_MAX)
    event_types = _event_types(form, required=False)
    status = _choice(form, "Status", {"enabled", "disabled"})
    version = _choice(form, "Version", {"v1", "v2"})
    url = await _webhook_url(services, form, required=False)
    if name is not None:
        wh.friendly_name = name
    if event_types is not None:
        wh.event_types = event_types
    if status is not None:
        wh.status = "disabled" if status == "disabled" else "enabled"
    if version is not None:
        wh.version = "v1" if version == "v1" else "v2"
    if url is not None:
        wh.webhook_url = url
    wh.date_updated = iso_ms(utcnow())
    await twilio_webhooks.save_webhook(services.redis, wh)
    return web.json_response(webhook_resource(wh, base_url(request)))


async def delete_webhook(request: web.Request) -> web.Response:
    services, wh = await _webhook(request)
    await twilio_webhooks.delete_webhook(services.redis, wh)
    return web.Response(status=204)


async def list_webhooks(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    fetch = partial(twilio_webhooks.list_webhooks, services.redis, service.sid)
    return await page_response(request, "webhooks", fetch, webhook_resource)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/Services/{service_sid}/Webhooks", list_webhooks)
    r.add_post("/v2/Services/{service_sid}/Webhooks", create_webhook)
    r.add_get("/v2/Services/{service_sid}/Webhooks/{sid}", fetch_webhook)
    r.add_post("/v2/Services/{service_sid}/Webhooks/{sid}", update_webhook)
    r.add_delete("/v2/Services/{service_sid}/Webhooks/{sid}", delete_webhook)
