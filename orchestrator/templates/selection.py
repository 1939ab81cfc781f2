"""Which fragment of a template a step sends, fixed on the step at start.

A step's channel picks the fragment's channel (SMS steps the `sms` fragments, voice steps the
`voice` ones; the other channels keep the catalogue's text, as Vonage's template_id "works only
when channel is sms"). The verification's locale picks among them: the same locale, else one
of the same language (`en-gb` takes an `en` or `en-us` fragment), else none, and the step keeps
the built-in catalogue's localized text, as Vonage falls back to its own template. The chosen
text goes into `Step.options["template_text"]`, which workers/channels/text.py renders with the
placeholders at the send: a template edited later never changes a verification under way.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from orchestrator.domain import errors
from orchestrator.domain.models import Channel, Step, Verification
from orchestrator.templates import placeholders, rules, store

__all__ = ["apply_template", "pick_fragment", "start_values", "vonage_template_text"]

_FRAGMENT_CHANNEL = {Channel.SMS: "sms", Channel.VOICE: "voice"}


def _language(locale: str) -> str:
    return locale.split("-", 1)[0]


def pick_fragment(template: store.Template, channel: str, locale: str) -> store.Fragment | None:
    """The fragment for `channel` in `locale`: exact, else the same language (the bare language
    first, then the oldest), else None."""
    wanted = locale.lower()
    candidates = [f for f in template.fragments if f.channel == channel]
    for f in candidates:
        if f.locale == wanted:
            return f
    language = _language(wanted)
    same = [f for f in candidates if _language(f.locale) == language]
    for f in same:
        if f.locale == language:
            return f
    return same[0] if same else None


def apply_template(
    template: store.Template,
    steps: list[Step],
    locale: str,
    values: Mapping[str, str],
    substitutions: Mapping[str, str] | None = None,
    *,
    keep_existing: bool = False,
) -> list[tuple[int, str]]:
    """Fix the template's text on each step it has a fragment for; the SMS steps whose text,
    filled with `values` (the start's brand, code length, time limit), would not fit one
    segment, as (step index, reason). `substitutions` fill author-defined variables now;
    `keep_existing`: a step that already has a text (a workflow's template) keeps it."""
    problems: list[tuple[int, str]] = []
    for i, step in enumerate(steps):
        channel = _FRAGMENT_CHANNEL.get(step.channel)
        if channel is None or (keep_existing and "template_text" in step.options):
            continue
        fragment = pick_fragment(template, channel, locale)
        if fragment is None:
            continue
        text = fragment.text
        if substitutions:
            text = placeholders.render(text, substitutions)
        if channel == "sms":
            for reason in rules.rendered_problems(text, values):
                problems.append((i, reason))
        step.options["template_text"] = text
    return problems


def start_values(v: Verification) -> dict[str, str]:
    """The values a send fills in, at their longest for this start (the code at its length)."""
    minutes = max(1, round(v.channel_timeout / 60))
    return {
        "brand": v.brand,
        "code": "W" * v.code_length,
        "time-limit": str(minutes),
        "time-limit-unit": "minute" if minutes == 1 else "minutes",
    }


async def vonage_template_text(redis: Redis, v: Verification, template_id: str | None) -> None:
    """A Vonage start's template: `template_id`'s, else the account's default one (if any).
    An unknown `template_id`, or a text this start's brand makes too long (a brand outside
    GSM-7 turns the message into 70-character UCS-2), is a 422 naming `template_id`."""
    if template_id is None:
        template = await store.default_template(redis, v.account)
        if template is None:
            return
    else:
        try:
            template = await store.get_template(redis, v.account, template_id.lower()[:64])
        except store.TemplateError:
            raise errors.InvalidParameters([("template_id", "Template was not found")]) from None
    # the default only fills steps without a text (a named workflow's template comes first);
    # an explicit template_id replaces it
    problems = apply_template(
        template, v.steps, v.locale, start_values(v), keep_existing=template_id is None
    )
    if problems and template_id is not None:
        raise errors.InvalidParameters([("template_id", reason) for _, reason in problems[:1]])
    for i, _ in problems:
        # the default template was not asked for: a step it does not fit keeps the catalogue
        v.steps[i].options.pop("template_text", None)
