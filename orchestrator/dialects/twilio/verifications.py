"""Twilio Verifications and VerificationCheck: start, fetch, update (approve/cancel), check."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from orchestrator import metrics
from orchestrator.console import index as recent_index
from orchestrator.dialects.twilio import ratelimit_store as ratelimits
from orchestrator.dialects.twilio import wire as tw
from orchestrator.dialects.twilio.context import base_url, read_form, service_for
from orchestrator.dialects.twilio.forms import Form, invalid
from orchestrator.dialects.twilio.lookup import carrier_lookup
from orchestrator.dialects.twilio.template_text import twilio_template_text
from orchestrator.domain import errors, transition
from orchestrator.domain.events import Approve, Cancel, CodeSubmitted, Resend, SilentCheck
from orchestrator.domain.models import Channel, Status, Step, Verification
from orchestrator.engine import messages
from orchestrator.handoff import token as handoff
from orchestrator.phone import number_of, parse_msisdn
from orchestrator.security import fraud
from orchestrator.services import Services
from orchestrator.tenants.accounts import new_sid
from orchestrator.tenants.verify_services import Service
from orchestrator.timefmt import utcnow
from orchestrator.workflows.file import WorkflowsFile
from orchestrator.workflows.plan import plan as plan_workflow
from orchestrator.workflows.registry import WORKFLOWS

__all__ = ["setup_routes"]

_EMAIL_MAX = 254


def _is_email(value: object) -> bool:
    """A non-empty local part and domain around exactly one '@', without whitespace."""
    if not isinstance(value, str):
        return False
    local, _, domain = value.partition("@")
    return bool(local and domain) and "@" not in domain and not any(c.isspace() for c in value)


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
    services: Services,
    service: Service,
    form: Form,
    channel: str,
    to: str,
    *,
    workflows: WorkflowsFile | None = None,
    locale: str = "en-us",
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
    if channel == "auto" and service.workflow is not None:
        return await _workflow_steps(services, service, workflows, to, device_ip, locale, options)
    if channel == "auto":
        covered = (
            device_ip is not None and services.operator.table.msisdn_for(device_ip) is not None
        )
        sms = Step(channel=Channel.SMS, to=to, options=dict(options))
        if covered:
            return [Step(channel=Channel.SILENT_AUTH, to=to, options={"device_ip": device_ip}), sms]
        return [sms]
    return [Step(channel=tw.CHANNELS[channel], to=to, sender=sender, options=options)]


async def _workflow_steps(
    services: Services,
    service: Service,
    workflows: WorkflowsFile | None,
    to: str,
    device_ip: str | None,
    locale: str,
    options: dict[str, Any],
) -> list[Step]:
    """`Channel=auto` on a service with a named workflow: that workflow's kept steps for `to`,
    their texts in `locale` (the auto path's own options, e.g. AppHash, go on its SMS steps)."""
    assert service.workflow is not None
    if workflows is None or service.workflow not in workflows.workflows:
        message = f"The service's workflow {service.workflow!r} is not in the workflows file"
        raise tw.TwilioError(400, 60200, message)
    plan = await plan_workflow(
        workflows,
        service.workflow,
        to=to,
        operators=services.operators,
        now=utcnow(),
        device_ip=device_ip,
    )
    steps = plan.domain_steps(locale)
    if not steps:
        message = f"The service's workflow {service.workflow!r} keeps no step for this number"
        raise tw.TwilioError(400, 60200, message)
    for step in steps:
        if step.channel is Channel.SMS:
            step.options.update(options)
    return steps


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
    locale = locale or (
        messages.default_locale_for_number(number_of(to)) if channel != "email" else "en-us"
    )
    registry = request.app.get(WORKFLOWS)
    steps = await _steps(
        services,
        service,
        form,
        channel,
        to,
        workflows=registry.current if registry is not None else None,
        locale=locale,
    )
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
    # TemplateSid (else the service's DefaultTemplateSid) and TemplateCustomSubstitutions
    await twilio_template_text(
        services.redis,
        form,
        service,
        steps,
        to=to,
        locale=locale,
        brand=friendly or service.friendly_name,
        code_length=service.code_length,
    )
    if rate_limits:
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
        return web.json_response(_resource(request, services, t.state, start=True), status=201)
    v = Verification(
        request_id=new_sid("VE"),
        tenant=service.sid,
        account=service.account_sid,
        brand=friendly or service.friendly_name,
        locale=locale,
        channel_timeout=tw.TWILIO_RULES.lifetime or 600,
        code_length=service.code_length,
        steps=steps,
        created_at=now,
        custom_code=custom_code,
        notify=True,
        dialect="twilio",
        rules=tw.TWILIO_RULES
        if service.sim_swap_max_age_hours is None
        else tw.TWILIO_RULES.model_copy(
            update={"sim_swap_max_age_hours": service.sim_swap_max_age_hours}
        ),
        extra={"amount": amount, "payee": payee, "lookup": lookup},
    )
    await services.store.create(
        transition.begin(v, now, services.tools),
        now,
        recent_index.indexed(guard, v, services.settings.retention_seconds),
    )
    metrics.started(v)
    return web.json_response(_resource(request, services, v, start=True), status=201)


def _resource(
    request: web.Request, services: Services, v: Verification, *, start: bool = False
) -> dict[str, Any]:
    """`start`: a start's answer, whose `sna` also carries the desktop handoff page (fetches
    keep Twilio's own `sna` shape)."""
    public = services.settings.public_url
    sna_url = f"{public.rstrip('/')}/v2/verify/{v.request_id}/silent-auth/redirect"
    handoff_url = handoff.desktop_url(public, services.tools, v.request_id) if start else None
    return tw.verification_resource(v, base_url(request), sna_url, handoff_url)


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
    r.add_post("/v2/Services/{service_sid}/Verifications", create_verification)
    r.add_get("/v2/Services/{service_sid}/Verifications/{sid}", fetch_verification)
    r.add_post("/v2/Services/{service_sid}/Verifications/{sid}", update_verification)
    r.add_post("/v2/Services/{service_sid}/VerificationCheck", create_check)
