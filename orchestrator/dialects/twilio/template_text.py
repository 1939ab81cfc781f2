"""Twilio's `TemplateSid` and `TemplateCustomSubstitutions` on a Verification start.

`TemplateSid` (else the service's `DefaultTemplateSid`) names one of the account's templates;
its SMS or voice fragment for the verification's locale is fixed on the step (see
orchestrator/templates/selection.py), with the author-defined variables filled from
`TemplateCustomSubstitutions` now and `${code}`/`${brand}`/`${time-limit}` at the send. Other
channels keep the catalogue's text, as Twilio's templates serve SMS and voice only. Not a route
module: the Verifications route calls `twilio_template_text` once its steps exist.
"""

from __future__ import annotations

import re
from typing import Any

from redis.asyncio import Redis

from orchestrator.dialects.twilio.forms import Form, invalid
from orchestrator.domain.models import Step
from orchestrator.engine import messages
from orchestrator.phone import number_of
from orchestrator.templates import rules, selection, store
from orchestrator.tenants.verify_services import Service

__all__ = ["twilio_template_text"]

# Twilio's verification lifetime: `{{ttl}}` reads 10 (minutes)
_TTL_MINUTES = 10


def _substitutions(form: Form, variables: list[str]) -> dict[str, str]:
    raw: dict[str, Any] | None = form.json_object("TemplateCustomSubstitutions")
    if not raw:
        return {}
    values: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise invalid("TemplateCustomSubstitutions")
        text = str(value)
        # a value is plain text: no placeholders of its own, within the length the template's
        # one-segment check counted
        if len(text) > rules.CUSTOM_VALUE_MAX or "${" in text or "{{" in text:
            raise invalid("TemplateCustomSubstitutions")
        name = key[2:-2].strip() if key.startswith("{{") and key.endswith("}}") else key
        if not re.fullmatch(rules.VARIABLE_PATTERN, name) or name not in variables:
            raise invalid("TemplateCustomSubstitutions")
        values[name] = text
    return values


async def twilio_template_text(
    redis: Redis,
    form: Form,
    service: Service,
    steps: list[Step],
    *,
    to: str,
    locale: str | None,
    brand: str,
    code_length: int,
) -> None:
    """Fix the template's text on `steps` (in place). An unknown TemplateSid is a 60200 naming
    it; substitutions that are not the template's variables, are missing one, or make the SMS
    longer than one segment are a 60200 naming TemplateCustomSubstitutions."""
    sid = form.text("TemplateSid", pattern=r"HJ[0-9a-fA-F]{32}") or service.default_template_sid
    if not sid:
        return
    param = "TemplateSid" if form.has("TemplateSid") else "DefaultTemplateSid"
    template_id = store.id_for_sid(sid)
    if template_id is None:
        raise invalid(param)
    try:
        template = await store.get_template(redis, service.account_sid, template_id)
    except store.TemplateError:
        raise invalid(param) from None
    values = _substitutions(form, template.variables)
    chosen = locale or messages.default_locale_for_number(number_of(to))
    start = {
        "brand": brand,
        "code": "W" * code_length,
        "time-limit": str(_TTL_MINUTES),
        "time-limit-unit": "minutes",
    }
    # the service's default fills only steps without a text (a workflow's template comes
    # first); an explicit TemplateSid replaces it
    keep = param != "TemplateSid"
    if selection.apply_template(template, steps, chosen, start, values, keep_existing=keep):
        raise invalid("TemplateCustomSubstitutions" if values else param)
    unfilled = ["${" + name + "}" for name in template.variables]
    for step in steps:
        text = step.options.get("template_text")
        if isinstance(text, str) and any(marker in text for marker in unfilled):
            # a variable the chosen text uses and the request did not fill
            raise invalid("TemplateCustomSubstitutions")
