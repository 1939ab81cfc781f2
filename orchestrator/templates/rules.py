"""What an author's message text must be: `${code}` in it, known placeholders only, and (for
SMS) one segment once every placeholder holds its longest value.

One segment is 160 GSM-7 septets (extension characters such as `€` or `{` cost two) or, when any
character is outside GSM 03.38, 70 UTF-16 units. The check fills the placeholders with the
longest value each can take, so a text that passes here fits whatever a start puts in it: a
code of 10 characters, a brand of 18 (Vonage's maximum), a time limit of two digits and the unit
"minutes"; an author-defined variable (Twilio's TemplateCustomSubstitutions) at its maximum of
`CUSTOM_VALUE_MAX` characters. Twilio writes placeholders as `{{code}}`, `{{friendly_name}}` and
`{{ttl}}`; `canonical` turns them into Vonage's `${…}` names, the one form stored. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from orchestrator.delivery import gsm
from orchestrator.templates import placeholders

__all__ = [
    "BRAND_MAX",
    "CHANNELS",
    "CODE_MAX",
    "CUSTOM_VALUE_MAX",
    "VARIABLE_PATTERN",
    "VOICE_TEXT_MAX",
    "canonical",
    "fits_one_segment",
    "rendered_problems",
    "segment_limit",
    "text_problems",
    "twilio_form",
]

CHANNELS = ("sms", "voice")
CODE_MAX = 10
BRAND_MAX = 18
CUSTOM_VALUE_MAX = 20
# a voice script is not bound by SMS segments; this only keeps a stored text reasonable
VOICE_TEXT_MAX = 640
VARIABLE_PATTERN = r"[a-z][a-z0-9_]{0,31}"
_GSM_SEGMENT = 160
_UCS2_SEGMENT = 70
# Twilio's template variables -> ours; any other `{{name}}` is an author-defined variable
_TWILIO_NAMES = {"code": "code", "friendly_name": "brand", "ttl": "time-limit"}
_TWILIO_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_-]+)\s*\}\}")
_OURS_TO_TWILIO = {ours: theirs for theirs, ours in _TWILIO_NAMES.items()}
# the longest value each placeholder takes at a send (workers/channels/text.py fills them)
_LONGEST = {
    "code": "W" * CODE_MAX,
    "brand": "W" * BRAND_MAX,
    "time-limit": "15",
    "time-limit-unit": "minutes",
}


def canonical(text: str) -> str:
    """`text` with Twilio's `{{code}}`-style placeholders written as `${code}`."""
    return _TWILIO_PLACEHOLDER.sub(
        lambda m: "${" + _TWILIO_NAMES.get(m.group(1), m.group(1)) + "}", text
    )


def twilio_form(text: str) -> str:
    """A stored text as Twilio lists it: `${brand}` as `{{friendly_name}}`, and so on."""
    return re.sub(
        r"\$\{([^}]*)\}", lambda m: "{{" + _OURS_TO_TWILIO.get(m.group(1), m.group(1)) + "}}", text
    )


def segment_limit(text: str) -> int:
    """160 for a GSM-7 text, 70 for any other."""
    return _GSM_SEGMENT if gsm.is_gsm7(text) else _UCS2_SEGMENT


def _length(text: str) -> int:
    if gsm.is_gsm7(text):
        return gsm.septets(text)
    # UCS-2 as SMSCs send it: UTF-16 code units (a character outside the BMP takes two)
    return len(text.encode("utf-16-le")) // 2


def fits_one_segment(text: str) -> bool:
    return _length(text) <= segment_limit(text)


def text_problems(text: str, channel: str, variables: Iterable[str] = ()) -> list[str]:
    """Why `text` cannot be a `channel` template's text, each reason a sentence; [] when it can.

    `variables` are the author-defined names the text may use besides the four placeholders.
    """
    extra = tuple(variables)
    problems: list[str] = []
    if not text.strip():
        return ["text must not be empty"]
    names = placeholders.placeholders_in(text)
    if "code" not in names:
        problems.append("text must contain the ${code} placeholder")
    unknown = placeholders.unknown_placeholders(text, placeholders.PLACEHOLDERS + extra)
    if unknown:
        shown = ", ".join("${" + name + "}" for name in unknown)
        allowed = ", ".join("${" + name + "}" for name in placeholders.PLACEHOLDERS + extra)
        problems.append(f"unknown placeholder {shown}; use {allowed}")
    if channel == "voice":
        if len(text) > VOICE_TEXT_MAX:
            problems.append(f"text must be at most {VOICE_TEXT_MAX} characters")
        return problems
    longest: dict[str, str] = dict(_LONGEST)
    longest.update(dict.fromkeys(extra, "W" * CUSTOM_VALUE_MAX))
    filled = placeholders.render(text, longest)
    length, limit = _length(filled), segment_limit(filled)
    if length > limit:
        unit = "GSM-7 characters" if limit == _GSM_SEGMENT else "UCS-2 characters"
        problems.append(
            f"text is longer than one SMS segment: {length} {unit} with every placeholder at its "
            f"longest value (code {CODE_MAX}, brand {BRAND_MAX}), at most {limit}"
        )
    return problems


def rendered_problems(text: str, values: Mapping[str, str]) -> list[str]:
    """Why a text filled with a start's own values (`values`) cannot go as one SMS segment."""
    filled = placeholders.render(text, values)
    if fits_one_segment(filled):
        return []
    return [f"the text filled with this request's values exceeds one SMS segment ({len(filled)})"]
