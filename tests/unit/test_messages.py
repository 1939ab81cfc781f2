"""Localized message templates: every locale file is complete, and rendering fills it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from orchestrator.messages import (
    RenderedMessage,
    default_locale_for_region,
    normalize_locale,
    render,
    supported_locales,
)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "config" / "templates"
KEYS = {"name", "sms", "whatsapp", "voice", "email_subject", "email_body"}
CHANNELS = ("sms", "whatsapp", "voice", "email")
# The Vonage SDK's locales must all be present.
VONAGE_LOCALES = (
    *("en-us", "en-gb", "es-es", "es-mx", "es-us", "it-it", "fr-fr"),
    *("de-de", "ru-ru", "hi-in", "pt-br", "pt-pt", "id-id"),
)
TEMPLATE_FILES = sorted(TEMPLATES_DIR.glob("*.toml"))


def test_at_least_32_locales_including_vonage_set() -> None:
    locales = supported_locales()
    assert len(locales) >= 32
    assert list(locales) == sorted(locales)
    assert set(VONAGE_LOCALES) <= set(locales)
    assert locales == tuple(sorted(path.stem for path in TEMPLATE_FILES))


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.stem)
def test_locale_file_is_complete(path: Path) -> None:
    assert path.stem == path.stem.lower()
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    assert set(data) == KEYS
    for key in KEYS:
        assert isinstance(data[key], str)
        assert data[key].strip()
    for key in ("sms", "whatsapp", "email_body"):
        assert "${code}" in data[key], key
        assert "${brand}" in data[key], key
        assert "${minutes}" in data[key], key
    assert "${brand}" in data["voice"]
    assert data["voice"].count("${spoken_code}") == 2  # said, then repeated once
    assert "${code}" not in data["voice"]
    assert "${brand}" in data["email_subject"]
    assert data["email_body"].count("\n") >= 5


@pytest.mark.parametrize("locale", supported_locales())
@pytest.mark.parametrize("channel", CHANNELS)
def test_render_substitutes_every_placeholder(channel: str, locale: str) -> None:
    message = render(channel, locale, brand="Acme", code="493817", minutes=12)
    assert isinstance(message, RenderedMessage)
    assert message.locale == locale
    assert "${" not in message.text
    assert "Acme" in message.text
    if channel == "voice":
        assert message.text.count("4, 9, 3, 8, 1, 7") == 2
        assert "493817" not in message.text
    else:
        assert "493817" in message.text
        assert "12" in message.text
    if channel == "email":
        assert message.subject is not None
        assert "${" not in message.subject
        assert "Acme" in message.subject
    else:
        assert message.subject is None


def test_render_english_texts() -> None:
    sms = render("sms", "en-gb", brand="Acme", code="1234", minutes=5)
    assert sms.text.startswith("Acme: your verification code is 1234.")
    assert "5 minutes" in sms.text
    voice = render("voice", "en-us", brand="Acme", code="1234", minutes=5)
    assert "1, 2, 3, 4" in voice.text
    email = render("email", "en-us", brand="Acme", code="1234", minutes=5)
    assert email.subject == "Your Acme verification code"
    assert "1234" in email.text


def test_render_keeps_dollar_signs_in_values_literal() -> None:
    message = render("sms", "en-us", brand="$brand ${code}", code="1234", minutes=5)
    assert message.text.startswith("$brand ${code}: your verification code is 1234.")


def test_render_unknown_channel_raises() -> None:
    with pytest.raises(ValueError, match="channel"):
        render("pigeon", "en-us", brand="Acme", code="1234", minutes=5)


@pytest.mark.parametrize("locale", ["xx-yy", "en-GB", "en_gb", "en", "", "klingon"])
def test_render_requires_normalized_supported_locale(locale: str) -> None:
    with pytest.raises(ValueError, match="locale"):
        render("sms", locale, brand="Acme", code="1234", minutes=5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("en-gb", "en-gb"),
        ("en-GB", "en-gb"),
        ("en_gb", "en-gb"),
        ("EN-gb", "en-gb"),
        (" en-US ", "en-us"),
        ("en", "en-us"),
        ("EN", "en-us"),
        ("es", "es-es"),
        ("es-MX", "es-mx"),
        ("es_US", "es-us"),
        ("es-419", "es-mx"),
        ("pt", "pt-br"),
        ("pt-BR", "pt-br"),
        ("pt-PT", "pt-pt"),
        ("fr", "fr-fr"),
        ("de", "de-de"),
        ("it", "it-it"),
        ("ru", "ru-ru"),
        ("hi", "hi-in"),
        ("id", "id-id"),
        ("ja", "ja-jp"),
        ("zh", "zh-cn"),
        ("zh-CN", "zh-cn"),
        ("zh-HK", "zh-hk"),
        ("zh-TW", "zh-tw"),
        ("zh-Hant", "zh-tw"),
        ("zh-Hans", "zh-cn"),
        ("ar", "ar-xa"),
        ("ar-SA", "ar-xa"),
        ("he", "he-il"),
        ("iw", "he-il"),
        ("nb", "nb-no"),
        ("no", "nb-no"),
        ("tl", "tl-ph"),
        ("fil", "tl-ph"),
        ("bn", "bn-in"),
        ("uk", "uk-ua"),
    ],
)
def test_normalize_locale(value: str, expected: str) -> None:
    assert normalize_locale(value) == expected


@pytest.mark.parametrize("value", ["", "  ", "xx", "xx-yy", "en-zz", "fr-ca", "english", "en-"])
def test_normalize_locale_unsupported(value: str) -> None:
    assert normalize_locale(value) is None


def test_every_bare_language_normalizes_to_one_of_its_locales() -> None:
    for locale in supported_locales():
        language = locale.split("-")[0]
        normalized = normalize_locale(language)
        assert normalized is not None
        assert normalized.startswith(language + "-")
        assert normalize_locale(locale.upper().replace("-", "_")) == locale


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("GB", "en-gb"),
        ("US", "en-us"),
        ("CA", "en-us"),
        ("ES", "es-es"),
        ("MX", "es-mx"),
        ("AR", "es-mx"),
        ("CO", "es-mx"),
        ("CL", "es-mx"),
        ("PE", "es-mx"),
        ("IT", "it-it"),
        ("FR", "fr-fr"),
        ("BE", "fr-fr"),
        ("DE", "de-de"),
        ("AT", "de-de"),
        ("CH", "de-de"),
        ("RU", "ru-ru"),
        ("IN", "hi-in"),
        ("BR", "pt-br"),
        ("PT", "pt-pt"),
        ("ID", "id-id"),
        ("JP", "ja-jp"),
        ("CN", "zh-cn"),
        ("HK", "zh-hk"),
        ("TW", "zh-tw"),
        ("NL", "nl-nl"),
        ("SA", "ar-xa"),
        ("KR", "ko-kr"),
        ("UA", "uk-ua"),
        ("gb", "en-gb"),
    ],
)
def test_default_locale_for_region(region: str, expected: str) -> None:
    assert default_locale_for_region(region) == expected


@pytest.mark.parametrize("region", [None, "", "ZZ", "001", "XK", "not-a-region"])
def test_default_locale_for_unknown_region_is_en_us(region: str | None) -> None:
    assert default_locale_for_region(region) == "en-us"


def test_every_region_default_is_supported() -> None:
    supported = set(supported_locales())
    letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    for region in (a + b for a in letters for b in letters):
        assert default_locale_for_region(region) in supported
