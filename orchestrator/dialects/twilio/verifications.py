"""Twilio Verify v2 routes: Services, Verifications and VerificationCheck, on the shared engine."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from . import fraud, messages, metrics, verify_services
from .accounts import new_sid, resolve_basic
from .auth import AuthError, basic_credentials
from .dialects import twilio as tw
from .dialects.twilio_forms import Form, invalid
from .domain import errors, transition
from .domain.events import Approve, Cancel, CodeSubmitted, Resend, SilentCheck
from .domain.models import Channel, Status, Step, Verification
from .factors.passkeys import apply_service_params as apply_passkeys_params
from .lookup import carrier_lookup
from .phone import number_of, parse_msisdn
from .services import Services
from .timefmt import iso_ms, utcnow
from .verify_services import Service
from .web import SERVICES

__all__ = ["base_url", "service_for", "setup_routes", "twilio_account"]

_EMAIL_MAX = 254


def _is_email(value: object) -> bool:
    """A non-empty local part and domain around exactly one '@', without whitespace."""
    if not isinstance(value, str):
        return False
    local, _, domain = value.partition("@")
    return bool(local and domain) and "@" not in domain and not any(c.isspace() for c in value)


def base_url(request: web.Request) -> str:
    """Absolute URLs in resources point at whoever the client called (SDK pagination needs it)."""
    return f"{request.scheme}://{request.host}"


async def twilio_account(request: web.Request) -> tuple[Services, str]:
    services = request.app[SERVICES]
    try:
        user, password = basic_credentials(request.headers.get("Authorization"))
    except AuthError:
        raise tw.TwilioError(401, 20003, "Authenticate") from None
    account = await resolve_basic(services.redis, user, password)
    if account is None:
        raise tw.TwilioError(401, 20003, "Authenticate")
    return services, account.sid


async def service_for(request: web.Request) -> tuple[Services, Service]:
    services, account = await twilio_account(request)
    sid = request.match_info["service_sid"]
    service = await verify_services.get_service(services.redis, account, sid)
    if service is None:
        raise errors.NotFound(sid)
    return services, service


async def read_form(request: web.Request) -> Form:
    """The request's form; an undecodable one is the caller's 400 (20001 invalid body)."""
    try:
        return Form(await request.post())
    except (ValueError, LookupError):
        # undecodable bytes, an unknown charset or a broken multipart body: the caller's 400
        raise invalid("body") from None


# ---- Services -----------------------------------------------------------------------------------


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
    from . import ratelimits, twilio_webhooks

    rate_limits, _ = await ratelimits.list_rate_limits(services.redis, service.sid, 0, 10**6)
    for rate_limit in rate_limits:
        await ratelimits.delete_rate_limit(services.redis, rate_limit)
    for hook in await twilio_webhooks.service_webhooks(services.redis, service.sid):
        await twilio_webhooks.delete_webhook(services.redis, hook)
    return web.Response(status=204)


def page_params(request: web.Request) -> tuple[int, int]:
    form = Form(request.query)
    size = form.integer("PageSize", 1, 1000) or 50
    page = form.integer("Page", 0, 10**6) or 0
    return page, size


def page_body(
    request: web.Request, key: str, items: list[dict[str, Any]], page: int, size: int, total: int
) -> dict[str, Any]:
    """A Twilio list page: absolute URLs built from the request, as the SDK follows them verbatim."""
    url = f"{base_url(request)}{request.path}"

    def page_url(n: int) -> str:
        return f"{url}?{urlencode({'PageSize': size, 'Page': n})}"

    has_next = (page + 1) * size < total
    return {
        key: items,
        "meta": {
            "page": page,
            "page_size": size,
            "first_page_url": page_url(0),
            "previous_page_url": page_url(page - 1) if page > 0 else None,
            "next_page_url": page_url(page + 1) if has_next else None,
            "url": page_url(page),
            "key": key,
        },
    }


async def list_services(request: web.Request) -> web.Response:
    services, account = await twilio_account(request)
    page, size = page_params(request)
    found, total = await verify_services.list_services(services.redis, account, page * size, size)
    items = [tw.service_resource(s, base_url(request)) for s in found]
    return web.json_response(page_body(request, "services", items, page, size, total))


# ---- Verifications ------------------------------------------------------------------------------


def _destination(form: Form, channel: str, sandbox: bool) -> str:
    to = form.text("To", required=True, max_len=_EMAIL_MAX)
    assert to is not None
    if channel == "email":
        if not _is_email(to):
            raise invalid("To")
        return to
    digits = to[1:] if to.startswith("+") else to
    # ASCII only: `\d` also matches other scripts' digits, which would dodge the per-To lock
    parsed = parse_msisdn(digits, sandbox=sandbox) if digits.isascii() else None
    if parsed is None or not to.startswith("+"):
        raise invalid("To")
    return parsed


async def _steps(
    services: Services, service: Service, form: Form, channel: str, to: str
) -> list[Step]:
    options: dict[str, Any] = {}
    device_ip = form.ip("DeviceIp")
    send_digits = form.text("SendDigits", max_len=32, pattern=r"[0-9#*wW]+")
    app_hash = form.text("AppHash", max_len=32)
    config = form.json_object("ChannelConfiguration")
    form.text("TemplateSid", pattern=r"HJ[0-9a-fA-F]{32}")
    form.json_object("TemplateCustomSubstitutions")
    if channel in {"sms", "auto"} and app_hash:
        options["app_hash"] = app_hash
    if channel == "call":
        if send_digits:
            options["send_digits"] = send_digits
        if service.dtmf_input_required:
            # the callee must press this key before the code is read, proving a human answered
            options["dtmf_digit"] = str(secrets.randbelow(10))
        if service.tts_name:
            options["tts_name"] = service.tts_name
    sender = None
    if channel == "email" and config:
        # Twilio: `from` is optional, but when given it must be a valid email address
        if config.get("from") is not None and not _is_email(config["from"]):
            raise invalid("ChannelConfiguration")
        sender = config.get("from")
        for key in ("from_name", "template_id", "substitutions"):
            if key in config:
                options[key] = config[key]
    if channel == "whatsapp":
        sender = service.whatsapp.get("from")
    if channel == "auto":
        covered = (
            device_ip is not None and services.operator.table.msisdn_for(device_ip) is not None
        )
        sms = Step(channel=Channel.SMS, to=to, options=dict(options))
        if covered:
            return [Step(channel=Channel.SILENT_AUTH, to=to, options={"device_ip": device_ip}), sms]
        return [sms]
    return [Step(channel=tw.CHANNELS[channel], to=to, sender=sender, options=options)]


async def create_verification(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    settings = services.settings
    form = await read_form(request)
    channel = form.text("Channel", required=True, max_len=16)
    if channel not in {*tw.CHANNELS, "auto"}:
        raise invalid("Channel")
    assert channel is not None
    to = _destination(form, channel, settings.sandbox)
    custom_code = form.text("CustomCode", max_len=10, pattern=r"[A-Za-z0-9]{4,10}")
    if custom_code is not None and not service.custom_code_enabled:
        raise invalid("CustomCode")
    locale_param = form.text("Locale", max_len=16)
    locale = messages.normalize_locale(locale_param) if locale_param else None
    if locale_param and locale is None:
        raise invalid("Locale")
    amount = form.text("Amount", max_len=64)
    payee = form.text("Payee", max_len=64)
    if (amount or payee) and not service.psd2_enabled:
        raise invalid("Amount" if amount else "Payee")
    if service.psd2_enabled and channel != "sna" and (amount is None) != (payee is None):
        raise invalid("Payee" if amount else "Amount")
    friendly = form.text("CustomFriendlyName", max_len=30)
    rate_limits = form.json_object("RateLimits", string_values=True)
    risk_check = form.text("RiskCheck", max_len=16)
    if risk_check is not None and risk_check not in {"enable", "disable"}:
        raise invalid("RiskCheck")
    steps = await _steps(services, service, form, channel, to)
    lookup: dict[str, Any] = {}
    if channel != "email" and (service.lookup_enabled or service.skip_sms_to_landlines):
        lookup = carrier_lookup(to)
        if (
            service.skip_sms_to_landlines
            and steps[0].channel is Channel.SMS
            and lookup["carrier"]["type"] == "landline"
        ):
            raise tw.TwilioError(403, 60205, "SMS is not supported by landline phone number")
    for step in steps:
        if amount is not None:
            step.options.update(amount=amount, payee=payee)
        if service.do_not_share_warning_enabled:
            step.options["do_not_share_warning"] = True
    if rate_limits:
        from . import ratelimits

        await ratelimits.consume(
            services.redis, service.sid, {k: str(v) for k, v in rate_limits.items()}
        )
    now = utcnow()
    existing = await services.redis.get(services.store.active_key(service.sid, to))
    # a resend is bounded by its verification's own send limit: only new ones count per number
    guard = fraud.start_guard(
        settings,
        dialect="twilio",
        tenant=service.sid,
        destinations=[] if existing is not None else [to.lower()],
        codes=[] if channel == "email" else [fraud.calling_code(to)],
        client_ip=request.remote,
        bypass_requested=risk_check == "disable",
    )
    if existing is not None:
        await fraud.run_guard(services.redis, guard)
        # a new start for a pending destination is a resend of the same verification
        rid = existing.decode()
        t = await services.store.apply(
            rid,
            service.sid,
            lambda cur: transition.transition(cur, Resend(steps[-1]), now, services.tools),
            now,
        )
        return web.json_response(_resource(request, services, t.state), status=201)
    v = Verification(
        request_id=new_sid("VE"),
        tenant=service.sid,
        account=service.account_sid,
        brand=friendly or service.friendly_name,
        locale=locale
        or (messages.default_locale_for_number(number_of(to)) if channel != "email" else "en-us"),
        channel_timeout=tw.TWILIO_RULES.lifetime or 600,
        code_length=service.code_length,
        steps=steps,
        created_at=now,
        custom_code=custom_code,
        notify=True,
        dialect="twilio",
        rules=tw.TWILIO_RULES,
        extra={"amount": amount, "payee": payee, "lookup": lookup},
    )
    await services.store.create(transition.begin(v, now, services.tools), now, guard)
    metrics.started(v)
    return web.json_response(_resource(request, services, v), status=201)


def _resource(request: web.Request, services: Services, v: Verification) -> dict[str, Any]:
    sna_url = (
        f"{services.settings.public_url.rstrip('/')}/v2/verify/{v.request_id}/silent-auth/redirect"
    )
    return tw.verification_resource(v, base_url(request), sna_url)


async def _pending(services: Services, service: Service, sid_or_to: str) -> Verification:
    """A pending verification by VE sid, or by its destination (To)."""
    rid = sid_or_to
    if not sid_or_to.startswith("VE"):
        to = sid_or_to.removeprefix("+").strip()
        found = await services.redis.get(services.store.active_key(service.sid, to))
        if found is None:
            raise errors.NotFound(sid_or_to)
        rid = found.decode()
    loaded = await services.store.load(rid)
    if loaded is None or loaded[0].tenant != service.sid or loaded[0].status is not Status.PENDING:
        raise errors.NotFound(sid_or_to)
    return loaded[0]


async def fetch_verification(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    v = await _pending(services, service, request.match_info["sid"][:64])
    return web.json_response(_resource(request, services, v))


async def update_verification(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    form = await read_form(request)
    status = form.text("Status", required=True, max_len=16)
    if status not in {"canceled", "approved"}:
        raise invalid("Status")
    v = await _pending(services, service, request.match_info["sid"][:64])
    event = Cancel() if status == "canceled" else Approve()
    now = utcnow()
    t = await services.store.apply(
        v.request_id,
        service.sid,
        lambda cur: transition.transition(cur, event, now, services.tools),
        now,
    )
    if t.state.status is Status.COMPLETED:
        await fraud.record_completion(services.redis, services.settings, t.state)
    return web.json_response(_resource(request, services, t.state))


async def create_check(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    form = await read_form(request)
    sid = form.text("VerificationSid", max_len=34, pattern=r"VE[0-9a-fA-F]{32}")
    to = form.text("To", max_len=_EMAIL_MAX)
    code = form.text("Code", max_len=10, pattern=r"[A-Za-z0-9]{4,10}")
    if sid is None and to is None:
        raise invalid("To")
    v = await _pending(services, service, sid or (to or ""))
    now = utcnow()
    event = (
        SilentCheck()
        if code is None
        else CodeSubmitted(services.tools.hash_code(v.request_id, code))
    )
    # the state this check committed (the store may call `step` again after a lost race, and
    # its last call is the one committed): a wrong code answers with *its* outcome, not with
    # whatever a concurrent check made of the verification since
    committed: list[Verification] = []

    def step(cur: Verification) -> transition.Transition:
        committed.clear()
        try:
            t = transition.transition(cur, event, now, services.tools)
        except transition.Refused as exc:
            committed.append(exc.transition.state)
            raise
        committed.append(t.state)
        return t

    try:
        t = await services.store.apply(v.request_id, service.sid, step, now)
        state = t.state
        if state.status is Status.COMPLETED:
            await fraud.record_completion(services.redis, services.settings, state)
    except (errors.InvalidCode, errors.CodelessStep):
        # a wrong code is not an error in this dialect: the verification stays pending
        if committed:
            state = committed[-1]
        else:
            loaded = await services.store.load(v.request_id)
            state = loaded[0] if loaded else v
    return web.json_response(tw.check_resource(state))


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/Services", list_services)
    r.add_post("/v2/Services", create_service)
    r.add_get("/v2/Services/{service_sid}", fetch_service)
    r.add_post("/v2/Services/{service_sid}", update_service)
    r.add_delete("/v2/Services/{service_sid}", delete_service)
    r.add_post("/v2/Services/{service_sid}/Verifications", create_verification)
    r.add_get("/v2/Services/{service_sid}/Verifications/{sid}", fetch_verification)
    r.add_post("/v2/Services/{service_sid}/Verifications/{sid}", update_verification)
    r.add_post("/v2/Services/{service_sid}/VerificationCheck", create_check)
