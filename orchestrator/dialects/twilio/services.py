"""Twilio Services: create, fetch, update, delete and list (the behaviour-changing config)."""

from __future__ import annotations

from aiohttp import web

from orchestrator.dialects.twilio import ratelimit_store as ratelimits
from orchestrator.dialects.twilio import webhook_events as twilio_webhooks
from orchestrator.dialects.twilio import wire as tw
from orchestrator.dialects.twilio.context import base_url, read_form, service_for, twilio_account
from orchestrator.dialects.twilio.forms import Form
from orchestrator.dialects.twilio.pages import page_body, page_params
from orchestrator.factors.passkeys import apply_service_params as apply_passkeys_params
from orchestrator.tenants import verify_services
from orchestrator.tenants.accounts import new_sid
from orchestrator.tenants.verify_services import Service
from orchestrator.timefmt import iso_ms, utcnow

__all__ = ["setup_routes"]


def _apply_service_params(service: Service, form: Form) -> None:
    name = form.text("FriendlyName", max_len=32)
    if name is not None:
        service.friendly_name = name
    code_length = form.integer("CodeLength", 4, 10)
    if code_length is not None:
        service.code_length = code_length
    for param, attr in [
        ("LookupEnabled", "lookup_enabled"),
        ("SkipSmsToLandlines", "skip_sms_to_landlines"),
        ("DtmfInputRequired", "dtmf_input_required"),
        ("Psd2Enabled", "psd2_enabled"),
        ("DoNotShareWarningEnabled", "do_not_share_warning_enabled"),
        ("CustomCodeEnabled", "custom_code_enabled"),
        ("VerifyEventSubscriptionEnabled", "verify_event_subscription_enabled"),
    ]:
        value = form.boolean(param)
        if value is not None:
            setattr(service, attr, value)
    tts = form.text("TtsName", max_len=64)
    if tts is not None:
        service.tts_name = tts
    template = form.text("DefaultTemplateSid", pattern=r"HJ[0-9a-fA-F]{32}")
    if template is not None:
        service.default_template_sid = template
    include_date = form.boolean("Push.IncludeDate")
    if include_date is not None:
        service.push["include_date"] = include_date
    for param, key in [
        ("Push.ApnCredentialSid", "apn_credential_sid"),
        ("Push.FcmCredentialSid", "fcm_credential_sid"),
    ]:
        credential = form.text(param, pattern=r"CR[0-9a-fA-F]{32}")
        if credential is not None:
            service.push[key] = credential
    issuer = form.text("Totp.Issuer", max_len=64)
    if issuer is not None:
        service.totp["issuer"] = issuer
    for param, key, lo, hi in [
        ("Totp.TimeStep", "time_step", 20, 60),
        ("Totp.CodeLength", "code_length", 3, 8),
        ("Totp.Skew", "skew", 0, 2),
    ]:
        number = form.integer(param, lo, hi)
        if number is not None:
            service.totp[key] = number
    msg_service = form.text("Whatsapp.MsgServiceSid", pattern=r"MG[0-9a-fA-F]{32}")
    if msg_service is not None:
        service.whatsapp["msg_service_sid"] = msg_service
    wa_from = form.text("Whatsapp.From", max_len=64)
    if wa_from is not None:
        service.whatsapp["from"] = wa_from
    apply_passkeys_params(service.passkeys, form)


async def create_service(request: web.Request) -> web.Response:
    services, account = await twilio_account(request)
    form = await read_form(request)
    form.text("FriendlyName", required=True, max_len=32)
    now = utcnow()
    service = Service(
        sid=new_sid("VA"),
        account_sid=account,
        friendly_name="",
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    _apply_service_params(service, form)
    await verify_services.save_service(services.redis, service, int(now.timestamp() * 1000))
    return web.json_response(tw.service_resource(service, base_url(request)), status=201)


async def fetch_service(request: web.Request) -> web.Response:
    _, service = await service_for(request)
    return web.json_response(tw.service_resource(service, base_url(request)))


async def update_service(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    form = await read_form(request)
    _apply_service_params(service, form)
    service.date_updated = iso_ms(utcnow())
    await verify_services.save_service(services.redis, service)
    return web.json_response(tw.service_resource(service, base_url(request)))


async def delete_service(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    await verify_services.delete_service(services.redis, service)
    # what hangs off the service goes with it (pending verifications expire by themselves)
    rate_limits, _ = await ratelimits.list_rate_limits(services.redis, service.sid, 0, 10**6)
    for rate_limit in rate_limits:
        await ratelimits.delete_rate_limit(services.redis, rate_limit)
    for hook in await twilio_webhooks.service_webhooks(services.redis, service.sid):
        await twilio_webhooks.delete_webhook(services.redis, hook)
    return web.Response(status=204)


async def list_services(request: web.Request) -> web.Response:
    services, account = await twilio_account(request)
    page, size = page_params(request)
    found, total = await verify_services.list_services(services.redis, account, page * size, size)
    items = [tw.service_resource(s, base_url(request)) for s in found]
    return web.json_response(page_body(request, "services", items, page, size, total))


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/Services", list_services)
    r.add_post("/v2/Services", create_service)
    r.add_get("/v2/Services/{service_sid}", fetch_service)
    r.add_post("/v2/Services/{service_sid}", update_service)
    r.add_delete("/v2/Services/{service_sid}", delete_service)
