"""`${name}` placeholders in an author's message text, with Vonage's names.

`${brand}`, `${code}`, `${time-limit}` and `${time-limit-unit}` are what a Vonage Verify v2
template fragment may use; the same four serve the workflows file's templates and Twilio's
TemplateSid. Pure: the channels fill the values (a voice step's code comes spaced digit by digit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["PLACEHOLDERS", "placeholders_in", "render", "unknown_placeholders"]

PLACEHOLDERS = ("brand", "code", "time-limit", "time-limit-unit")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def placeholders_in(text: str) -> list[str]:
    """Every `${…}` name in `text`, in order, repeats included."""
    return _PLACEHOLDER.findall(text)


def unknown_placeholders(text: str, allowed: tuple[str, ...] = PLACEHOLDERS) -> list[str]:
    """The names in `text` that are not placeholders (typos such as `${cod}`), once each."""
    seen: list[str] = []
    for name in placeholders_in(text):
        if name not in allowed and name not in seen:
            seen.append(name)
    return seen


def render(text: str, values: Mapping[str, str]) -> str:
    """`text` with each known placeholder replaced; an unknown one is left as written (templates
    are checked when they are saved, so none should reach a send)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
