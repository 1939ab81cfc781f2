"""The handoff pages' and link message's texts, per locale of the message catalogue.

Kept beside the pages rather than in config/templates: the catalogue's TOML files hold the
code messages and are validated key by key (orchestrator.engine.messages); these are page
texts. The locales are the catalogue's own (tests hold the two to the same set), and a locale
is resolved the catalogue's way: the verification's locale is already normalized by it.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from types import MappingProxyType

from orchestrator.handoff import texts_a, texts_b, texts_c

__all__ = ["KEYS", "RTL_LANGUAGES", "for_locale", "locales", "sms_text"]

FALLBACK = "en-us"
# every locale must give each of these (tests/integration/test_handoff.py checks all of them)
KEYS = (
    "title",
    "intro",
    "qr_label",
    "sms_button",
    "sms_sent",
    "sms_limit",
    "status_label",
    "waiting",
    "verified",
    "failed",
    "fallback",
    "ended",
    "phone_title",
    "phone_intro",
    "phone_button",
    "back",
    "sms",
)
RTL_LANGUAGES = frozenset({"ar", "he"})


@functools.cache
def _catalogue() -> Mapping[str, Mapping[str, str]]:
    merged: dict[str, Mapping[str, str]] = {}
    for part in (texts_a.TEXTS, texts_b.TEXTS, texts_c.TEXTS):
        for locale, entry in part.items():
            missing = [k for k in KEYS if not entry.get(k)]
            if missing:
                raise ValueError(f"handoff texts for {locale} lack {', '.join(missing)}")
            merged[locale] = MappingProxyType(dict(entry))
    return MappingProxyType(merged)


def locales() -> tuple[str, ...]:
    return tuple(sorted(_catalogue()))


def for_locale(locale: str) -> Mapping[str, str]:
    """The texts of a normalized locale (the verification's), else American English."""
    catalogue = _catalogue()
    return catalogue.get(locale.lower()) or catalogue[FALLBACK]


def sms_text(locale: str, brand: str, url: str) -> str:
    """The "text me a link" message: the brand and the phone page's URL."""
    return string.Template(for_locale(locale)["sms"]).safe_substitute(brand=brand, url=url)
