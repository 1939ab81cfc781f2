"""Localized message templates: every locale file is complete, and rendering fills it."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import phonenumbers
import pytest

from orchestrator.engine import messages
from orchestrator.engine.messages import (
    RenderedMessage,
    default_locale_for_region,
    normalize_locale,
    render,
    supported_locales,
)
from orchestrator.phone import number_of, region_of_number

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "config" / "templates"
KEYS = {
    *("name", "sms", "whatsapp", "voice", "email_subject", "email_body"),
    *("voice_dtmf", "psd2", "do_not_share"),
}
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


# A phrase of each locale's own do-not-share warning, found in both its sms and whatsapp texts:
# render() relies on those texts carrying a warning and only adds one to the PSD2 sentence.
WARNING_MARKERS = {
    "af-za": "moenie",
    "ar-xa": "لا تشارك",
    "bg-bg": "не го споделяйте",  # noqa: RUF001
    "bn-in": "বেন না",
    "ca-es": "no el comparteixis",
    "cs-cz": "nesdělujte",
    "da-dk": "ikke",
    "de-de": "weiter",
    "el-gr": "μην τον κοινοποιήσετε",
    "en-gb": "don't share",
    "en-us": "share",
    "es-es": "no lo compartas",
    "es-mx": "no lo comparta",
    "es-us": "comparta",
    "et-ee": "ärge",
    "fi-fi": "älä",
    "fr-fr": "personne",
    "he-il": "אין ל",
    "hi-in": "साझा न करें",
    "hr-hr": "nemojte ga nikome davati",
    "hu-hu": "senki",
    "id-id": "jangan",
    "it-it": "non condividerlo con nessuno",
    "ja-jp": "ないでください",
    "ko-kr": "지 마세요",
    "lt-lt": "niekam jo neatskleiskite",
    "lv-lv": "neizpaudiet to nevienam",
    "ms-my": "jangan kongsi kod ini",
    "nb-no": "ikke del",
    "nl-nl": "met niemand",
    "pl-pl": "nie udostępniaj go nikomu",
    "pt-br": "não compartilhe",
    "pt-pt": "partilhe",
    "ro-ro": "nu îl comunicați nimănui",
    "ru-ru": "никому его не сообщайте",  # noqa: RUF001
    "sk-sk": "neposkytujte",
    "sv-se": "inte",
    "th-th": "รหัสนี้กับผู้อื่น",
    "tl-ph": "huwag",
    "tr-tr": "kimseyle paylaşmayın",  # noqa: RUF001
    "uk-ua": "нікому його не повідомляйте",
    "vi-vn": "không chia sẻ mã này",
    "zh-cn": "请勿",
    "zh-hk": "勿",
    "zh-tw": "請勿",
}
AMOUNT, PAYEE = "€39.99", "ACME Ltd"


def _load(path: Path) -> dict[str, str]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def _payment(
    channel: str,
    locale: str,
    *,
    brand: str = "Acme",
    code: str = "493817",
    dtmf_digit: str | None = None,
    do_not_share: bool = False,
) -> RenderedMessage:
    """`channel`'s text confirming a payment of AMOUNT to PAYEE, the code valid for 10 minutes."""
    return render(
        channel,
        locale,
        brand=brand,
        code=code,
        minutes=10,
        amount=AMOUNT,
        payee=PAYEE,
        dtmf_digit=dtmf_digit,
        do_not_share=do_not_share,
    )


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.stem)
def test_locale_file_has_payment_key_and_warning_sentences(path: Path) -> None:
    data = _load(path)
    assert "${digit}" in data["voice_dtmf"]
    assert "${code}" not in data["voice_dtmf"]
    assert "${spoken_code}" not in data["voice_dtmf"]
    for placeholder in ("${code}", "${amount}", "${payee}", "${brand}"):
        assert data["psd2"].count(placeholder) == 1, placeholder
    assert "${" not in data["do_not_share"]
    for key in ("voice_dtmf", "psd2", "do_not_share"):
        assert "\n" not in data[key].strip(), key
    # these sentences are new per locale: never left in English outside the English locales
    if not path.stem.startswith("en-"):
        assert data["psd2"] != _load(TEMPLATES_DIR / "en-us.toml")["psd2"]
        assert data["do_not_share"] != _load(TEMPLATES_DIR / "en-us.toml")["do_not_share"]


def test_warning_markers_cover_every_locale() -> None:
    assert set(WARNING_MARKERS) == set(supported_locales())


@pytest.mark.parametrize("locale", supported_locales())
def test_sms_and_whatsapp_already_carry_a_warning(locale: str) -> None:
    marker = WARNING_MARKERS[locale]
    for channel in ("sms", "whatsapp"):
        plain = render(channel, locale, brand="Acme", code="493817", minutes=10)
        assert marker in plain.text.casefold(), channel
        warned = render(channel, locale, brand="Acme", code="493817", minutes=10, do_not_share=True)
        assert warned == plain  # nothing to add


@pytest.mark.parametrize("locale", supported_locales())
def test_render_psd2_in_every_locale(locale: str) -> None:
    data = _load(TEMPLATES_DIR / f"{locale}.toml")
    for channel in ("sms", "whatsapp"):
        message = _payment(channel, locale)
        assert message.subject is None
        for value in ("493817", "€39.99", "ACME Ltd", "Acme"):
            assert value in message.text, (channel, value)
        assert "${" not in message.text
        # the payment sentence lacks a warning: do_not_share adds the locale's own
        warned = _payment(channel, locale, do_not_share=True)
        assert warned.text.startswith(message.text)
        assert warned.text.endswith(data["do_not_share"])
    email = _payment("email", locale)
    plain_email = render("email", locale, brand="Acme", code="493817", minutes=10)
    assert email.subject == plain_email.subject
    assert email.text.endswith(plain_email.text)
    assert "€39.99" in email.text.split("\n\n")[0]
    assert "ACME Ltd" in email.text.split("\n\n")[0]
    voice = _payment("voice", locale)
    plain_voice = render("voice", locale, brand="Acme", code="493817", minutes=10)
    assert voice.text.endswith(plain_voice.text)
    assert "€39.99" in voice.text
    assert "ACME Ltd" in voice.text
    assert "493817" not in voice.text  # spoken digit by digit, like the rest of the script
    # the payment sentence (with the code in it) comes before the usual script
    assert voice.text.index("ACME Ltd") < len(voice.text) - len(plain_voice.text)


@pytest.mark.parametrize("locale", supported_locales())
def test_render_dtmf_prompt_leads_the_voice_script(locale: str) -> None:
    plain = render("voice", locale, brand="Acme", code="493817", minutes=10)
    message = render("voice", locale, brand="Acme", code="493817", minutes=10, dtmf_digit="7")
    expected_prompt = (
        _load(TEMPLATES_DIR / f"{locale}.toml")["voice_dtmf"]
        .replace("${digit}", "7")
        .replace("${brand}", "Acme")
    )
    assert message.text.startswith(expected_prompt)
    assert message.text.endswith(plain.text)
    assert message.text.index("7") < message.text.index("4, 9, 3, 8, 1, 7")


def test_render_english_payment_texts() -> None:
    sms = _payment("sms", "en-us", brand="Shop", code="1234")
    assert sms.text == "Code 1234 confirms your payment of €39.99 to ACME Ltd with Shop."
    warned = _payment("sms", "en-us", brand="Shop", code="1234", do_not_share=True)
    assert warned.text == sms.text + " Do not share this code with anyone."
    voice = _payment("voice", "en-us", brand="Shop", code="1234", dtmf_digit="5")
    assert voice.text.startswith(
        "To hear your Shop verification code, press 5."
        " Code 1, 2, 3, 4 confirms your payment of €39.99 to ACME Ltd with Shop."
        " Hello, this is Shop."
    )
    email = _payment("email", "en-us", brand="Shop", code="1234")
    assert email.subject == "Your Shop verification code"
    assert email.text.startswith(
        "Code 1234 confirms your payment of €39.99 to ACME Ltd with Shop.\n\nHello,"
    )


def test_render_cjk_sentences_join_without_spaces() -> None:
    text = _payment("sms", "ja-jp", code="1234", do_not_share=True).text
    assert text.endswith("です。このコードは誰にも教えないでください。")


@pytest.mark.parametrize(
    ("amount", "payee"), [("€5", None), (None, "ACME"), ("", "ACME"), ("€5", "")]
)
def test_render_psd2_needs_amount_and_payee(amount: str | None, payee: str | None) -> None:
    plain = render("sms", "en-us", brand="Acme", code="1234", minutes=10)
    partial = render(
        "sms", "en-us", brand="Acme", code="1234", minutes=10, amount=amount, payee=payee
    )
    assert partial == plain


def test_render_psd2_values_stay_literal() -> None:
    text = render(
        "sms", "en-us", brand="Acme", code="1234", minutes=10, amount="$5 ${code}", payee="${brand}"
    ).text
    assert text == "Code 1234 confirms your payment of $5 ${code} to ${brand} with Acme."


def test_render_dtmf_only_changes_voice() -> None:
    for channel in ("sms", "whatsapp", "email"):
        plain = render(channel, "en-us", brand="Acme", code="1234", minutes=10)
        assert (
            render(channel, "en-us", brand="Acme", code="1234", minutes=10, dtmf_digit="3") == plain
        )


def test_render_warning_only_changes_sms_and_whatsapp() -> None:
    for channel in ("voice", "email"):
        plain = _payment(channel, "en-us", code="1234")
        warned = _payment(channel, "en-us", code="1234", do_not_share=True)
        assert warned == plain


@pytest.mark.parametrize("digit", ["", "12", "a", " ", "٣"])
def test_render_rejects_a_bad_dtmf_digit(digit: str) -> None:
    with pytest.raises(ValueError, match="dtmf_digit"):
        render("voice", "en-us", brand="Acme", code="1234", minutes=10, dtmf_digit=digit)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("psd2", "Code ${code} for ${amount} with ${brand}.", "lacks placeholders: payee"),
        ("psd2", "Code ${spoken_code} ${code} ${amount} ${payee} ${brand}.", "unknown"),
        ("voice_dtmf", "Press a key for ${brand}.", "lacks placeholders: digit"),
        ("do_not_share", "Never share ${code}.", "unknown"),
    ],
)
def test_loading_validates_the_new_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, match: str
) -> None:
    from orchestrator.engine import messages

    source = (TEMPLATES_DIR / "en-us.toml").read_text("utf-8")
    lines = [
        f'{key} = "{value}"' if line.startswith(f"{key} = ") else line
        for line in source.split("\n")
    ]
    (tmp_path / "en-us.toml").write_text("\n".join(lines), "utf-8")
    with pytest.raises(ValueError, match=match):
        messages._load_locale(tmp_path / "en-us.toml")
    missing = [line for line in source.split("\n") if not line.startswith(f"{key} = ")]
    (tmp_path / "en-us.toml").write_text("\n".join(missing), "utf-8")
    with pytest.raises(ValueError, match=f"lacks string keys: {key}"):
        messages._load_locale(tmp_path / "en-us.toml")


def test_default_locale_for_a_number_agrees_with_the_locale_of_its_region() -> None:
    # the shortcut (no region lookup when a calling code's regions share a locale) must pick what
    # the region would, for numbers of every calling code phonenumbers knows
    rng = random.Random(3)
    checked = 0
    for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        for _ in range(8):
            digits = str(cc) + "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 11)))
            number = number_of(digits)
            if number is None:
                continue
            checked += 1
            expected = messages.default_locale_for_region(region_of_number(number))
            assert messages.default_locale_for_number(number) == expected, digits
    assert checked > 1000
    # +1 is shared by regions with different locales: the region decides
    assert messages.default_locale_for_number(number_of("12025550123")) == (
        messages.default_locale_for_region("US")
    )
    assert messages.default_locale_for_number(None) == messages.default_locale_for_region(None)
