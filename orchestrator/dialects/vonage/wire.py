"""Vonage Verify v2 dialect: JSON requests to domain commands, domain outcomes to wire shapes."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from orchestrator.dialects.vonage.schema import VerifyRequest
from orchestrator.domain import errors, policy
from orchestrator.domain.effects import Emit
from orchestrator.domain.models import Channel, Step, Verification
from orchestrator.engine import messages
from orchestrator.operators.operators_file import Operators
from orchestrator.phone import Msisdn, parse_number
from orchestrator.timefmt import iso_ms
from orchestrator.workflows.file import WorkflowsFile
from orchestrator.workflows.plan import Plan
from orchestrator.workflows.plan import plan as plan_workflow

__all__ = [
    "ERROR_BASE",
    "build_verification",
    "check_url",
    "parse_start",
    "plan_start",
    "problem_for",
    "validation_problems",
    "webhook_body",
]

ERROR_BASE = "https://developer.vonage.com/en/api-errors/verify-v2#"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def parse_start(payload: Any) -> VerifyRequest:
    """Validate a start body; raise InvalidParameters naming every bad field."""
    if not isinstance(payload, dict):
        raise errors.InvalidParameters([("body", "The request body must be a JSON object")])
    try:
        req = VerifyRequest.model_validate(payload)
    except ValidationError as exc:
        raise errors.InvalidParameters(validation_problems(exc)) from None
    if (req.workflow is None) == (req.workflow_name is None):
        both = req.workflow is not None
        reason = "Give workflow or workflow_name, not both" if both else "workflow is required"
        raise errors.InvalidParameters([("workflow", reason)])
    if req.workflow_name is not None and req.to is None:
        raise errors.InvalidParameters([("to", "to is required with workflow_name")])
    return req


async def plan_start(
    req: VerifyRequest, workflows: WorkflowsFile | None, *, operators: Operators, now: datetime
) -> Plan | None:
    """For a `workflow_name` start: the named workflow evaluated for `to` (None for a start
    with its own `workflow`). An unknown name is a 422 naming `workflow_name`."""
    if req.workflow_name is None:
        return None
    assert req.to is not None
    if workflows is None or req.workflow_name not in workflows.workflows:
        reason = f"No workflow named {req.workflow_name!r}"
        raise errors.InvalidParameters([("workflow_name", reason)])
    return await plan_workflow(
        workflows,
        req.workflow_name,
        to=req.to,
        operators=operators,
        now=now,
        device_ip=req.device_ip,
        email=req.email,
    )


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """pydantic errors as Vonage's `invalid_parameters` name/reason pairs."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        name = _param_name(err["loc"])
        reason = err["msg"]
        if err["type"] == "missing":
            reason = f"{name} is required"
        elif name == "brand" and err["type"] == "string_pattern_mismatch":
            reason = "Brand must not contain any of / { } : $"
        elif err["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            reason = "channel must be one of silent_auth, sms, whatsapp, voice, email"
        problems.append((name, reason))
    return problems


def _param_name(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    after_index = False
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
            after_index = True
            continue
        if after_index and part in {c.value for c in Channel}:
            after_index = False  # the discriminator tag pydantic puts in the path
            continue
        after_index = False
        parts.append(("." if parts else "") + ("from" if part == "from_" else str(part)))
    return "".join(parts) or "body"


def build_verification(
    req: VerifyRequest,
    *,
    tenant: str,
    account: str,
    now: datetime,
    sandbox: bool,
    notify: bool,
    plan: Plan | None = None,
) -> Verification:
    """Turn a validated request into a fresh domain verification (not yet started); a
    `workflow_name` start takes its steps from `plan` (see plan_start)."""
    problems: list[tuple[str, str]] = []
    steps: list[Step] = []
    # each phone number is parsed once, here; its region then picks the default locale
    numbers: list[Msisdn | None] = []
    if plan is not None:
        steps, numbers = _planned_steps(req, plan, sandbox, problems)
    elif req.workflow_name is not None:
        # nobody planned it (plan_start not called): refused, never a verification without steps
        reason = f"No workflow named {req.workflow_name!r}"
        raise errors.InvalidParameters([("workflow_name", reason)])
    for i, entry in enumerate(req.workflow or []):
        channel = Channel(entry.channel)
        if channel is Channel.SILENT_AUTH and i != 0:
            problems.append(
                (f"workflow[{i}].channel", "silent_auth must be the first workflow step")
            )
        to = entry.to
        parsed: Msisdn | None = None
        if channel is Channel.EMAIL:
            if not _EMAIL.match(to):
                problems.append((f"workflow[{i}].to", "Invalid email address"))
        else:
            parsed = parse_number(to, sandbox=sandbox)
            if parsed is None:
                reason = "Invalid phone number: E.164 digits without '+' or '00'"
                problems.append((f"workflow[{i}].to", reason))
        sender = getattr(entry, "from_", None)
        options = entry.model_dump(
            exclude={"channel", "to", "from_", "reuse_code"}, exclude_none=True
        )
        reuse = bool(getattr(entry, "reuse_code", False))
        steps.append(Step(channel=channel, to=to, sender=sender, reuse_code=reuse, options=options))
        numbers.append(parsed)
    if req.code is not None and req.code_length is not None and len(req.code) != req.code_length:
        problems.append(("code_length", "code_length must equal the length of code"))
    locale = _locale(req, steps, numbers, problems)
    if problems:
        raise errors.InvalidParameters(problems)
    if plan is not None:
        # the texts are fixed now, in the verification's locale
        steps = plan.domain_steps(locale)
    return Verification(
        request_id=str(uuid.uuid4()),
        tenant=tenant,
        brand=req.brand,
        locale=locale,
        channel_timeout=req.channel_timeout,
        code_length=req.code_length or (len(req.code) if req.code else policy.CODE_LENGTH_DEFAULT),
        client_ref=req.client_ref,
        steps=steps,
        created_at=now,
        custom_code=req.code,
        notify=notify,
        dialect="vonage",
        account=account,
    )


def _planned_steps(
    req: VerifyRequest, plan: Plan, sandbox: bool, problems: list[tuple[str, str]]
) -> tuple[list[Step], list[Msisdn | None]]:
    """The plan's kept steps (texts not yet chosen) and their parsed numbers, for the checks
    and the locale a `workflow` start's steps get."""
    assert req.to is not None
    parsed = parse_number(req.to, sandbox=sandbox)
    if parsed is None:
        problems.append(("to", "Invalid phone number: E.164 digits without '+' or '00'"))
    if req.email is not None and not _EMAIL.match(req.email):
        problems.append(("email", "Invalid email address"))
    steps = plan.domain_steps("en")
    if not steps and not problems:
        reason = f"Workflow {plan.workflow.name!r} keeps no step for this number"
        problems.append(("workflow_name", reason))
    numbers = [None if s.channel is Channel.EMAIL else parsed for s in steps]
    return steps, numbers


def _locale(
    req: VerifyRequest,
    steps: list[Step],
    numbers: list[Msisdn | None],
    problems: list[tuple[str, str]],
) -> str:
    if req.locale is not None:
        found = messages.normalize_locale(req.locale)
        if found is None:
            problems.append(("locale", f"Unsupported locale {req.locale!r}"))
            return "en-us"
        return found
    for step, number in zip(steps, numbers, strict=True):
        if step.channel is not Channel.EMAIL:
            # an unparsable number has already added a problem, so this locale is never used
            return messages.default_locale_for_number(number.number if number else None)
    return "en-us"


def check_url(public_url: str, request_id: str) -> str:
    return f"{public_url.rstrip('/')}/v2/verify/{request_id}/silent-auth/redirect"


# ---- errors -------------------------------------------------------------------------------------

_PROBLEMS: dict[type[errors.DomainError], tuple[int, str, str, str]] = {
    errors.InvalidCode: (
        400,
        "invalid-code",
        "Invalid Code",
        "The code you provided does not match the expected value.",
    ),
    errors.TooManyAttempts: (
        410,
        "invalid-code",
        "Invalid Code",
        "An incorrect code has been provided too many times. Workflow terminated.",
    ),
    errors.DestinationBusy: (
        409,
        "concurrent",
        "Conflict",
        "Concurrent verifications to the same number are not allowed.",
    ),
    errors.CodelessStep: (
        409,
        "no-code",
        "Conflict",
        "The current Verify workflow step does not support a code.",
    ),
    errors.NoMoreSteps: (
        409,
        "conflict",
        "Conflict",
        "There are no more events left to trigger.",
    ),
    errors.SessionUsed: (
        409,
        "conflict",
        "Conflict",
        "This silent authentication check URL has already been used.",
    ),
    errors.NotCovered: (
        412,
        "network-error",
        "Network not supported",
        "Device number does not resolve to a supported Mobile Network Operator.",
    ),
    errors.SilentAuthFailed: (
        412,
        "precondition-failed",
        "Silent authentication failed",
        "The silent auth verification cannot be completed.",
    ),
    errors.RateLimited: (
        429,
        "rate-limit",
        "Rate Limit Hit",
        "Please wait, then retry your request",
    ),
    errors.Throttled: (
        429,
        "rate-limit",
        "Rate Limit Hit",
        "Please wait, then retry your request",
    ),
    errors.Blocked: (
        403,
        "forbidden",
        "Forbidden",
        "Your account does not have permission to perform this action.",
    ),
    errors.InvalidParameters: (
        422,
        "invalid-params",
        "Invalid params",
        "The value of one or more parameters is invalid.",
    ),
}


_BLOCKED_DETAIL = {
    "geo": "Sending to this destination's country is not enabled for your application.",
    "fraud": "Traffic to this destination's network is temporarily blocked by fraud prevention.",
}


def problem_for(exc: errors.DomainError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and problem+json body for a domain error."""
    if isinstance(exc, errors.NotFound):
        status, anchor, title = 404, "not-found", "Not Found"
        detail = f"Request {exc.request_id} was not found or it has been verified already."
    else:
        status, anchor, title, detail = _PROBLEMS.get(
            type(exc), _PROBLEMS[errors.InvalidParameters]
        )
        if isinstance(exc, errors.SilentAuthFailed) and exc.reason:
            detail = exc.reason
        if isinstance(exc, errors.Blocked):
            detail = _BLOCKED_DETAIL.get(exc.reason, detail)
    body: dict[str, Any] = {
        "type": ERROR_BASE + anchor,
        "title": title,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    if isinstance(exc, errors.DestinationBusy):
        body["request_id"] = exc.request_id
    if isinstance(exc, errors.InvalidParameters):
        body["invalid_parameters"] = [{"name": n, "reason": r} for n, r in exc.problems]
    return status, body


# ---- webhooks -----------------------------------------------------------------------------------


def webhook_body(v: Verification, emit: Emit, public_url: str) -> dict[str, Any]:
    """The callback body Vonage sends for `emit`: an `event` or the `summary`."""
    if emit.kind == "summary":
        body: dict[str, Any] = {
            "request_id": v.request_id,
            "submitted_at": iso_ms(v.created_at),
            "status": emit.status,
            "type": "summary",
            "channel_timeout": v.channel_timeout,
            "workflow": [_workflow_entry(step) for step in v.steps],
        }
    else:
        assert emit.step is not None
        step = v.steps[emit.step]
        body = {
            "request_id": v.request_id,
            "triggered_at": iso_ms(emit.at),
            "type": "event",
            "channel": step.channel.value,
            "status": emit.status,
        }
        if emit.status == "action_pending":
            body["action"] = {"type": "check", "check_url": check_url(public_url, v.request_id)}
        else:
            body["finalized_at"] = iso_ms(step.finalized_at or emit.at)
            if step.reason:
                # an extra field: why the step failed (a delivery receipt, the SIM-swap gate,
                # the operator's answer), so a backend can tell "no code sent" from "not used"
                body["reason"] = step.reason
    if v.client_ref is not None:
        body["client_ref"] = v.client_ref
    return body


def _workflow_entry(step: Step) -> dict[str, Any]:
    entry: dict[str, Any] = {"channel": step.channel.value, "status": step.status.value}
    if step.initiated_at is not None:
        entry["initiated_at"] = iso_ms(step.initiated_at)
    return entry
