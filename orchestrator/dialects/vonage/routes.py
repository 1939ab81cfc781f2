"""Vonage Verify v2 routes: start, check, next_workflow, cancel."""

from __future__ import annotations

import re

from aiohttp import web
from pydantic import ValidationError

from orchestrator import metrics
from orchestrator.console import index as recent_index
from orchestrator.delivery.providers_file import Delivery
from orchestrator.dialects.vonage import wire as vonage
from orchestrator.dialects.vonage.schema import CheckRequest
from orchestrator.domain import errors, transition
from orchestrator.domain.events import Cancel, CodeSubmitted, NextWorkflow
from orchestrator.domain.models import Channel, Step
from orchestrator.handoff import token as handoff
from orchestrator.http.body import read_json
from orchestrator.http.keys import DELIVERY, SERVICES
from orchestrator.security import fraud
from orchestrator.security.auth import Principal, authenticate
from orchestrator.services import Services
from orchestrator.templates.selection import vonage_template_text
from orchestrator.timefmt import utcnow
from orchestrator.workflows.registry import WORKFLOWS

__all__ = ["setup_routes"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


async def _principal(request: web.Request) -> tuple[Services, Principal]:
    services = request.app[SERVICES]
    header = request.headers.get("Authorization")
    principal = await authenticate(services.redis, header, services.settings.jwt_leeway_seconds)
    return services, principal


def _request_id(request: web.Request) -> str:
    request_id = request.match_info["request_id"]
    if not _UUID.match(request_id):
        raise errors.NotFound(request_id[:64])
    return request_id.lower()


async def start(request: web.Request) -> web.Response:
    services, principal = await _principal(request)
    settings = services.settings
    req = vonage.parse_start(await read_json(request))
    now = utcnow()
    # a `workflow_name` start: the named workflow's steps for this number (None otherwise)
    workflows = request.app.get(WORKFLOWS)
    plan = await vonage.plan_start(
        req, workflows.current if workflows else None, operators=services.operators, now=now
    )
    v = vonage.build_verification(
        req,
        tenant=principal.app.id,
        account=principal.app.account,
        now=now,
        sandbox=settings.sandbox,
        notify=principal.method == "jwt" and bool(principal.app.status_url),
        plan=plan,
    )
    if principal.app.sim_swap_hours is not None:
        v.rules = v.rules.model_copy(
            update={"sim_swap_max_age_hours": principal.app.sim_swap_hours}
        )
    # the account's template (template_id, else its default): fragment texts fixed on the steps
    await vonage_template_text(services.redis, v, req.template_id)
    delivery = request.app[DELIVERY]
    unavailable = [
        (f"workflow[{i}].channel", f"channel {s.channel.value} has no provider configured")
        for i, s in enumerate(v.steps)
        if not _channel_available(services, delivery, s)
    ]
    if unavailable:
        raise errors.InvalidParameters(unavailable)
    first = v.steps[0]
    silent = first.channel is Channel.SILENT_AUTH
    if silent and first.options.get("coverage_check", True):
        # the number's operator, if any (VERIFY_OPERATORS_FILE, else the sandbox's table)
        if services.operators.for_number(first.to) is None:
            raise errors.NotCovered()
    destinations, codes = fraud.verification_targets(v)
    guard = fraud.start_guard(
        settings,
        dialect="vonage",
        tenant=v.tenant,
        destinations=destinations,
        codes=codes,
        client_ip=request.remote,
        bypass_requested=req.fraud_check is False,
    )
    t = transition.begin(v, now, services.tools)
    await services.store.create(t, now, recent_index.indexed(guard, v, settings.retention_seconds))
    metrics.started(v)
    body: dict[str, str] = {"request_id": v.request_id}
    if silent:
        body["check_url"] = vonage.check_url(settings.public_url, v.request_id)
        # the desktop handoff page: the check carried to the phone by QR code or SMS link
        body["handoff_url"] = handoff.desktop_url(settings.public_url, services.tools, v.request_id)
    return web.json_response(body, status=202)


def _channel_available(services: Services, delivery: Delivery, step: Step) -> bool:
    """A message channel needs a route with a provider for the step's number (the providers
    file's, else VERIFY_CHANNEL_PROVIDERS'); silent auth needs an operator (whether one covers
    the number is the coverage check's question)."""
    if step.channel is Channel.SILENT_AUTH:
        return len(services.operators) > 0
    return bool(delivery.route(step.channel.value, step.to))


async def check(request: web.Request) -> web.Response:
    services, principal = await _principal(request)
    request_id = _request_id(request)
    payload = await read_json(request)
    if not isinstance(payload, dict):
        raise errors.InvalidParameters([("code", "code is required")])
    try:
        body = CheckRequest.model_validate(payload)
    except ValidationError as exc:
        raise errors.InvalidParameters(vonage.validation_problems(exc)) from None
    now = utcnow()
    code_hash = services.tools.hash_code(request_id, body.code)
    t = await services.store.apply(
        request_id,
        principal.app.id,
        lambda v: transition.transition(v, CodeSubmitted(code_hash), now, services.tools),
        now,
    )
    await fraud.record_completion(services.redis, services.settings, t.state)
    return web.json_response({"request_id": request_id, "status": "completed"})


async def next_workflow(request: web.Request) -> web.Response:
    services, principal = await _principal(request)
    request_id = _request_id(request)
    now = utcnow()
    await services.store.apply(
        request_id,
        principal.app.id,
        lambda v: transition.transition(v, NextWorkflow(), now, services.tools),
        now,
    )
    return web.Response(status=200)


async def cancel(request: web.Request) -> web.Response:
    services, principal = await _principal(request)
    request_id = _request_id(request)
    now = utcnow()
    await services.store.apply(
        request_id,
        principal.app.id,
        lambda v: transition.transition(v, Cancel(), now, services.tools),
        now,
    )
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v2/verify", start)
    app.router.add_post("/v2/verify/", start)
    app.router.add_post("/v2/verify/{request_id}", check)
    app.router.add_delete("/v2/verify/{request_id}", cancel)
    app.router.add_post("/v2/verify/{request_id}/next_workflow", next_workflow)
