"""Localized verification messages: per-locale TOML templates, rendered for each channel."""

from __future__ import annotations

import functools
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import phonenumbers

from orchestrator.phone import region_of_number

__all__ = [
    "RenderedMessage",
    "default_locale_for_region",
    "normalize_locale",
    "render",
    "supported_locales",
]

_TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "config" / "templates"
_FALLBACK_LOCALE = "en-us"
_CHANNELS = frozenset({"sms", "whatsapp", "voice", "email"})
_TEXT_KEYS = ("sms", "whatsapp", "voice", "email_subject", "email_body")
# Sentences combined with the channel texts: the key to press before a call reads the code
# (DTMF input), the payment a code confirms (PSD2 dynamic linking), a do-not-share warning.
_PART_KEYS = ("voice_dtmf", "psd2", "do_not_share")
_REQUIRED_KEYS = ("name", *_TEXT_KEYS, *_PART_KEYS)
_PLACEHOLDERS = frozenset({"brand", "code", "minutes", "spoken_code"})
# key -> (placeholders it may use, placeholders it must use); the channel texts use _PLACEHOLDERS
_PART_PLACEHOLDERS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    "voice_dtmf": (frozenset({"brand", "digit"}), frozenset({"digit"})),
    "psd2": (
        frozenset({"brand", "code", "minutes", "amount", "payee"}),
        frozenset({"brand", "code", "amount", "payee"}),
    ),
    "do_not_share": (frozenset({"brand"}), frozenset()),
}
# The sms and whatsapp templates already carry a do-not-share warning in every locale
# (tests/unit/test_messages.py holds each locale to it); the PSD2 sentence does not.
_WARNED_KEYS = frozenset({"sms", "whatsapp"})
_DTMF_KEYS = frozenset("0123456789*#")
# Languages written without spaces between sentences.
_UNSPACED_LANGUAGES = frozenset({"ja", "zh"})
_LOCALE_RE = re.compile(r"[a-z]{2,3}-[a-z]{2}")
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}")

# The region a bare language code means when the language has several locales.
_LANGUAGE_DEFAULTS: Mapping[str, str] = {
    "en": "en-us",
    "es": "es-es",
    "pt": "pt-br",
    "zh": "zh-cn",
}

# Other spellings callers send: legacy ISO 639 codes, script subtags, macro-regions.
_ALIASES: Mapping[str, str] = {
    "en-uk": "en-gb",
    "es-419": "es-mx",
    "fil": "tl-ph",
    "fil-ph": "tl-ph",
    "in": "id-id",
    "in-id": "id-id",
    "iw": "he-il",
    "iw-il": "he-il",
    "no": "nb-no",
    "no-no": "nb-no",
    "zh-hans": "zh-cn",
    "zh-hans-cn": "zh-cn",
    "zh-sg": "zh-cn",
    "zh-hans-sg": "zh-cn",
    "zh-hant": "zh-tw",
    "zh-hant-tw": "zh-tw",
    "zh-hant-hk": "zh-hk",
    "zh-mo": "zh-hk",
    "zh-hant-mo": "zh-hk",
}

# Locale -> ISO 3166 regions whose numbers get it by default; any other region gets en-us.
_REGIONS_BY_LOCALE: Mapping[str, tuple[str, ...]] = {
    "en-us": ("US", "CA", "AS", "GU", "MP", "UM", "VI"),
    "en-gb": (
        *("GB", "IE", "IM", "JE", "GG", "GI", "MT", "AU", "NZ", "SG", "PK"),
        *("ZA", "NA", "BW", "ZW", "ZM", "KE", "UG", "TZ", "NG", "GH"),
    ),
    "es-es": ("ES", "GQ"),
    "es-mx": (
        *("MX", "AR", "BO", "CL", "CO", "CR", "CU", "DO", "EC"),
        *("GT", "HN", "NI", "PA", "PE", "PY", "SV", "UY", "VE"),
    ),
    "es-us": ("PR",),
    "it-it": ("IT", "SM", "VA"),
    "fr-fr": (
        *("FR", "BE", "LU", "MC", "GF", "GP", "MQ", "RE", "YT", "PM", "NC", "PF", "WF", "BL"),
        *("MF", "SN", "CI", "ML", "BF", "NE", "TG", "BJ", "GN", "CM", "GA", "CG", "CD", "CF"),
        *("TD", "MG", "DJ", "KM", "BI", "HT"),
    ),
    "de-de": ("DE", "AT", "CH", "LI"),
    "ru-ru": ("RU", "BY", "KZ", "KG"),
    "hi-in": ("IN",),
    "pt-br": ("BR",),
    "pt-pt": ("PT", "AO", "MZ", "CV", "GW", "ST"),
    "id-id": ("ID",),
    "ar-xa": (
        *("SA", "AE", "EG", "QA", "KW", "BH", "OM", "JO", "LB", "SY"),
        *("IQ", "YE", "LY", "TN", "DZ", "MA", "SD", "PS", "MR"),
    ),
    "ca-es": ("AD",),
    "cs-cz": ("CZ",),
    "da-dk": ("DK", "GL", "FO"),
    "el-gr": ("GR", "CY"),
    "fi-fi": ("FI",),
    "he-il": ("IL",),
    "hr-hr": ("HR", "BA"),
    "hu-hu": ("HU",),
    "ja-jp": ("JP",),
    "ko-kr": ("KR",),
    "ms-my": ("MY", "BN"),
    "nb-no": ("NO", "SJ"),
    "nl-nl": ("NL", "SR", "AW", "CW", "SX", "BQ"),
    "pl-pl": ("PL",),
    "ro-ro": ("RO", "MD"),
    "sv-se": ("SE", "AX"),
    "th-th": ("TH",),
    "tl-ph": ("PH",),
    "tr-tr": ("TR",),
    "uk-ua": ("UA",),
    "vi-vn": ("VN",),
    "zh-cn": ("CN",),
    "zh-hk": ("HK", "MO"),
    "zh-tw": ("TW",),
    "bg-bg": ("BG",),
    "et-ee": ("EE",),
    "lt-lt": ("LT",),
    "lv-lv": ("LV",),
    "sk-sk": ("SK",),
    "bn-in": ("BD",),
}

_LOCALE_BY_REGION: Mapping[str, str] = {
    region: locale for locale, regions in _REGIONS_BY_LOCALE.items() for region in regions
}


@dataclass(frozen=True)
class RenderedMessage:
    locale: str
    text: str  # the sms/whatsapp/voice text, or the email body
    subject: str | None  # email only


def _load_locale(path: Path) -> Mapping[str, str]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    missing = [key for key in _REQUIRED_KEYS if not isinstance(data.get(key), str)]
    if missing:
        raise ValueError(f"message template {path} lacks string keys: {', '.join(missing)}")
    for key in (*_TEXT_KEYS, *_PART_KEYS):
        allowed, required = _PART_PLACEHOLDERS.get(key, (_PLACEHOLDERS, frozenset()))
        template = string.Template(data[key])
        used = set(template.get_identifiers())
        if not template.is_valid() or used - allowed:
            raise ValueError(
                f"message template {path} key {key!r} has invalid or unknown placeholders"
                f" (allowed: {', '.join(sorted(allowed))})"
            )
        if required - used:
            raise ValueError(
                f"message template {path} key {key!r} lacks placeholders:"
                f" {', '.join(sorted(required - used))}"
            )
    return MappingProxyType({key: data[key] for key in _REQUIRED_KEYS})


@functools.cache
def _templates() -> Mapping[str, Mapping[str, str]]:
    if not _TEMPLATES_DIR.is_dir():
        raise FileNotFoundError(
            f"message templates directory {_TEMPLATES_DIR} is missing; it ships in the repository"
            " checkout (config/templates), so install the project editable (pip install -e .)"
        )
    templates: dict[str, Mapping[str, str]] = {}
    for path in sorted(_TEMPLATES_DIR.glob("*.toml")):
        if not _LOCALE_RE.fullmatch(path.stem):
            raise ValueError(f"message template {path} is not named <ll-cc>.toml in lowercase")
        templates[path.stem] = _load_locale(path)
    if not templates:
        raise FileNotFoundError(f"no message templates (*.toml) in {_TEMPLATES_DIR}")
    return MappingProxyType(templates)


@functools.cache
def _language_defaults() -> Mapping[str, str]:
    """Bare language code -> locale: the explicit default, else the language's only locale."""
    by_language: dict[str, list[str]] = {}
    for locale in _templates():
        by_language.setdefault(locale.split("-", 1)[0], []).append(locale)
    defaults = {lang: locales[0] for lang, locales in by_language.items() if len(locales) == 1}
    defaults.update((lang, loc) for lang, loc in _LANGUAGE_DEFAULTS.items() if loc in _templates())
    return MappingProxyType(defaults)


def supported_locales() -> tuple[str, ...]:
    """Every locale with a template file, lowercase `ll-cc`, sorted."""
    return tuple(sorted(_templates()))


def normalize_locale(value: str) -> str | None:
    """`en-GB`, `en_gb`, `EN-gb` -> `en-gb`; `en` -> `en-us`; None when no template fits."""
    candidate = value.strip().lower().replace("_", "-")
    templates = _templates()
    if candidate in templates:
        return candidate
    alias = _ALIASES.get(candidate)
    if alias is not None and alias in templates:
        return alias
    if _LANGUAGE_RE.fullmatch(candidate):
        return _language_defaults().get(candidate)
    # Arabic has one pan-regional template (ar-xa): any Arabic region maps onto it.
    if _LOCALE_RE.fullmatch(candidate) and candidate.startswith("ar-") and "ar-xa" in templates:
        return "ar-xa"
    return None


def default_locale_for_region(region: str | None) -> str:
    """ISO 3166 alpha-2 region (as phonenumbers reports it) -> best supported locale."""
    if region:
        locale = _LOCALE_BY_REGION.get(region.strip().upper())
        if locale is not None and locale in _templates():
            return locale
    return _FALLBACK_LOCALE


def default_locale_for_number(number: phonenumbers.PhoneNumber | None) -> str:
    """default_locale_for_region of the number's region, without working the region out (a
    match against each candidate region's number patterns) when every region that shares the
    number's calling code has the same locale, as for most codes (+44: GB, GG, IM, JE)."""
    if number is None:
        return _FALLBACK_LOCALE
    shared = _shared_locale(number.country_code or 0)
    if shared is not None:
        return shared
    return default_locale_for_region(region_of_number(number))


@functools.cache
def _shared_locale(calling_code: int) -> str | None:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(calling_code, ())
    locales = {default_locale_for_region(r) for r in regions}
    return locales.pop() if len(locales) == 1 else None


def _join(locale: str, *sentences: str) -> str:
    """Sentences of one paragraph: space-separated, except in scripts written without spaces."""
    separator = "" if locale.split("-", 1)[0] in _UNSPACED_LANGUAGES else " "
    return separator.join(sentence.strip() for sentence in sentences)


def render(
    channel: str,
    locale: str,
    *,
    brand: str,
    code: str,
    minutes: int,
    amount: str | None = None,
    payee: str | None = None,
    dtmf_digit: str | None = None,
    do_not_share: bool = False,
) -> RenderedMessage:
    """Fill the `channel` template of a normalized `locale`; ValueError for unknown either.

    `amount` and `payee` (PSD2, both or neither take effect) make the sms, whatsapp and email
    texts confirm that payment, and the voice script state it before the code. `dtmf_digit`
    (voice only) starts the script with the request to press that key. `do_not_share` appends
    the warning to the sms and whatsapp texts that lack one (the PSD2 ones).
    """
    if channel not in _CHANNELS:
        raise ValueError(
            f"unknown message channel {channel!r}; expected one of {', '.join(sorted(_CHANNELS))}"
        )
    entry = _templates().get(locale)
    if entry is None:
        raise ValueError(f"unsupported locale {locale!r}; normalize it with normalize_locale()")
    if dtmf_digit is not None and (len(dtmf_digit) != 1 or dtmf_digit not in _DTMF_KEYS):
        raise ValueError(f"dtmf_digit must be one key of 0-9, * or #, not {dtmf_digit!r}")
    spoken_code = ", ".join(ch for ch in code if not ch.isspace())
    values = {
        "brand": brand,
        "code": code,
        "minutes": str(minutes),
        # one character at a time, so text-to-speech reads digits rather than a number
        "spoken_code": spoken_code,
    }

    def fill(key: str, **more: str) -> str:
        return string.Template(entry[key]).substitute(values, **more)

    psd2 = bool(amount) and bool(payee)
    payment = {"amount": amount or "", "payee": payee or ""}
    if channel == "email":
        body = fill("email_body")
        if psd2:
            body = f"{fill('psd2', **payment)}\n\n{body}"
        return RenderedMessage(locale=locale, text=body, subject=fill("email_subject"))
    if channel == "voice":
        # the key prompt comes first: a voice provider waits for that key before reading on
        parts = [fill("voice_dtmf", digit=dtmf_digit)] if dtmf_digit is not None else []
        if psd2:
            parts.append(fill("psd2", code=spoken_code, **payment))
        parts.append(fill("voice"))
        return RenderedMessage(locale=locale, text=_join(locale, *parts), subject=None)
    key = "psd2" if psd2 else channel
    text = fill(key, **payment) if psd2 else fill(key)
    if do_not_share and key not in _WARNED_KEYS:
        warning = fill("do_not_share")
        if warning not in text:
            text = _join(locale, text, warning)
    return RenderedMessage(locale=locale, text=text, subject=None)
