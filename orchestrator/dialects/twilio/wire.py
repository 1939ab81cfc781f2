"""Twilio Verify v2 dialect: resource shapes, statuses and the {code, message, more_info, status} errors."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from orchestrator.domain import errors
from orchestrator.domain.models import Channel, Rules, Status, Verification
from orchestrator.tenants.verify_services import Service

__all__ = [
    "CHANNELS",
    "TWILIO_RULES",
    "TwilioError",
    "attempt_sid",
    "check_resource",
    "error_body",
    "error_for",
    "service_resource",
    "tw_date",
    "twilio_status",
    "verification_resource",
]

# Twilio's verification lifecycle: 10 minutes, 5 sends, 5 checks with the 6th refused
TWILIO_RULES = Rules(
    max_checks=5,
    refuse_after_max=True,
    max_sends=5,
    step_timeouts=False,
    lifetime=600,
    keep_code=True,
    report_cancel=True,
    pending_after_silent_failure=True,
)
# silent-auth failure reasons -> Twilio SNA error codes (60519 number mismatch; 60500 any other
# carrier-side failure). The exact catalogue of 605xx codes is not public in full.
_SNA_ERRORS = {"Device MSISDN does not match.": 60519}

# wire channel name -> domain channel
CHANNELS: dict[str, Channel] = {
    "sms": Channel.SMS,
    "call": Channel.VOICE,
    "email": Channel.EMAIL,
    "whatsapp": Channel.WHATSAPP,
    "sna": Channel.SILENT_AUTH,
}
_WIRE = {v: k for k, v in CHANNELS.items()}
# how send_code_attempts spell channels
_ATTEMPT_CHANNEL = {
    "sms": "SMS",
    "call": "CALL",
    "email": "EMAIL",
    "whatsapp": "whatsapp",
    "sna": "SNA",
}


class TwilioError(Exception):
    """An error answered in Twilio's legacy shape."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    # no `type`/`title`: with them the SDK would raise its RFC 9457 exception instead
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def error_for(exc: errors.DomainError, path: str) -> TwilioError:
    """Map a domain error to Twilio's status and code."""
    if isinstance(exc, errors.NotFound):
        return TwilioError(404, 20404, f"The requested resource {path} was not found")
    if isinstance(exc, errors.InvalidParameters):
        name = exc.problems[0][0] if exc.problems else "body"
        return TwilioError(400, 60200, f"Invalid parameter: {name}")
    if isinstance(exc, errors.MaxSendsReached):
        return TwilioError(429, 60203, "Max send attempts reached")
    if isinstance(exc, errors.TooManyAttempts):
        return TwilioError(429, 60202, "Max check attempts reached")
    if isinstance(exc, errors.DestinationBusy):
        return TwilioError(429, 60212, "Too many concurrent requests for phone number")
    if isinstance(exc, errors.Throttled):
        return TwilioError(
            429, 20429, "Too many requests", headers={"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, errors.RateLimited):
        return TwilioError(429, 20429, "Too many requests")
    if isinstance(exc, errors.Blocked) and exc.reason == "geo":
        return TwilioError(
            403,
            60605,
            "Verification delivery attempt blocked: the destination's country is not enabled "
            "in this service's geo permissions",
        )
    if isinstance(exc, errors.Blocked):
        return TwilioError(
            403,
            60410,
            "Verification delivery attempt blocked: the destination prefix is temporarily "
            "blocked by Fraud Guard",
        )
    if isinstance(exc, errors.NotCovered | errors.SilentAuthFailed):
        return TwilioError(400, 60200, "Invalid parameter: To")
    return TwilioError(409, 20409, "Conflict")


def tw_date(value: datetime | str | None) -> str | None:
    """`YYYY-MM-DDTHH:MM:SSZ`, the only form the SDK parses into a datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def twilio_status(v: Verification) -> str:
    if v.status is Status.COMPLETED:
        return "approved"
    if v.status is Status.CANCELLED:
        return "canceled"
    if v.status is Status.EXPIRED:
        return "expired"
    if v.status is Status.FAILED:
        return "max_attempts_reached" if v.wrong_attempts >= v.rules.max_checks else "failed"
    return "pending"


def attempt_sid(request_id: str, index: int) -> str:
    return "VL" + hashlib.sha256(f"{request_id}:{index}".encode()).hexdigest()[:32]


def _wire_to(to: str) -> str:
    return to if "@" in to else "+" + to


def _updated(v: Verification) -> datetime:
    moments = [v.created_at, v.finished_at]
    for s in v.steps:
        moments += [s.initiated_at, s.finalized_at]
    return max(m for m in moments if m is not None)


def _channel(v: Verification) -> str:
    step = v.step or v.steps[0]
    return _WIRE[step.channel]


def _standing(v: Verification) -> dict[str, Any]:
    """What a Verification and a VerificationCheck open with: whose, to where, how it stands."""
    return {
        "sid": v.request_id,
        "service_sid": v.tenant,
        "account_sid": v.account,
        "to": _wire_to(v.steps[0].to),
        "channel": _channel(v),
        "status": twilio_status(v),
        "valid": v.status is Status.COMPLETED,
    }


def verification_resource(
    v: Verification, base: str, sna_url: str | None, handoff_url: str | None = None
) -> dict[str, Any]:
    """`handoff_url` (the desktop handoff page) rides in `sna` beside the URL, when given."""
    attempts = [
        {
            "time": tw_date(s.initiated_at),
            "channel": _ATTEMPT_CHANNEL[_WIRE[s.channel]],
            "attempt_sid": attempt_sid(v.request_id, i),
        }
        for i, s in enumerate(v.steps)
        if s.initiated_at is not None
    ]
    step = v.step
    pending_sna = (
        step is not None and step.channel is Channel.SILENT_AUTH and v.status is Status.PENDING
    )
    return {
        **_standing(v),
        "lookup": v.extra.get("lookup", {}),
        "amount": v.extra.get("amount"),
        "payee": v.extra.get("payee"),
        "send_code_attempts": attempts,
        "date_created": tw_date(v.created_at),
        "date_updated": tw_date(_updated(v)),
        "sna": (
            {"url": sna_url, **({"handoff_url": handoff_url} if handoff_url else {})}
            if pending_sna and sna_url
            else None
        ),
        "url": f"{base}/v2/Services/{v.tenant}/Verifications/{v.request_id}",
    }


def check_resource(v: Verification) -> dict[str, Any]:
    return {
        **_standing(v),
        "amount": v.extra.get("amount"),
        "payee": v.extra.get("payee"),
        "sna_attempts_error_codes": [_SNA_ERRORS.get(reason, 60500) for reason in v.sa_failures],
        "date_created": tw_date(v.created_at),
        "date_updated": tw_date(_updated(v)),
    }


def service_resource(s: Service, base: str) -> dict[str, Any]:
    url = f"{base}/v2/Services/{s.sid}"
    # the SIM-swap gate and the named workflow are this service's own settings (CLI), not
    # fields of Twilio's resource
    body = s.model_dump(exclude={"sim_swap_max_age_hours", "workflow"})
    body["date_created"] = tw_date(s.date_created)
    body["date_updated"] = tw_date(s.date_updated)
    body["url"] = url
    body["links"] = {
        name: f"{url}/{path}"
        for name, path in [
            ("verification_checks", "VerificationCheck"),
            ("verifications", "Verifications"),
            ("rate_limits", "RateLimits"),
            ("messaging_configurations", "MessagingConfigurations"),
            ("entities", "Entities"),
            ("webhooks", "Webhooks"),
            ("access_tokens", "AccessTokens"),
        ]
    }
    return body
