"""Channel adapters: each composes its OutboundMessage from a Verification step's options."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.domain.models import Channel, Step, Verification
from workers.channels.base import ChannelAdapter, OutboundMessage
from workers.channels.text import EmailChannel, SmsChannel, VoiceChannel, WhatsAppChannel

CODE = "493817"
SPOKEN = "4, 9, 3, 8, 1, 7"
PAYMENT = {"amount": "€39.99", "payee": "ACME Ltd"}


def verification(
    channel: Channel,
    to: str = "447700900123",
    *,
    locale: str = "en-us",
    brand: str = "Shop",
    sender: str | None = None,
    **options: Any,
) -> Verification:
    return Verification(
        request_id="VE" + "0" * 32,
        tenant="VA" + "1" * 32,
        account="AC" + "2" * 32,
        brand=brand,
        locale=locale,
        channel_timeout=600,
        code_length=len(CODE),
        steps=[Step(channel=channel, to=to, sender=sender, options=options)],
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def compose(adapter: ChannelAdapter, v: Verification) -> OutboundMessage:
    return adapter.compose(v, 0, CODE)


def test_sms_plain_message() -> None:
    message = compose(SmsChannel(), verification(Channel.SMS))
    assert message.text == (
        "Shop: your verification code is 493817. It expires in 10 minutes."
        " Don't share it with anyone."
    )
    assert message.id == "VE" + "0" * 32 + ":0"
    assert message.tenant == "AC" + "2" * 32
    assert message.channel == "sms"
    assert message.to == "447700900123"
    assert message.sender == "Shop"
    assert message.code == CODE
    assert message.locale == "en-us"
    assert message.subject is None
    assert message.extra == {}


def test_sms_psd2_text_names_amount_payee_and_code() -> None:
    message = compose(SmsChannel(), verification(Channel.SMS, **PAYMENT))
    assert message.text == "Code 493817 confirms your payment of €39.99 to ACME Ltd with Shop."


def test_sms_psd2_with_do_not_share_warning_and_app_hash() -> None:
    v = verification(Channel.SMS, app_hash="He42w354ol9", do_not_share_warning=True, **PAYMENT)
    message = compose(SmsChannel(), v)
    assert message.text == (
        "Code 493817 confirms your payment of €39.99 to ACME Ltd with Shop."
        " Do not share this code with anyone.\nHe42w354ol9"
    )


def test_sms_warning_is_not_doubled() -> None:
    plain = compose(SmsChannel(), verification(Channel.SMS))
    warned = compose(SmsChannel(), verification(Channel.SMS, do_not_share_warning=True))
    assert warned.text == plain.text
    assert warned.text.lower().count("share") == 1


def test_sms_keeps_app_hash_on_the_last_line() -> None:
    message = compose(SmsChannel(), verification(Channel.SMS, app_hash="He42w354ol9"))
    first, last = message.text.rsplit("\n", 1)
    assert last == "He42w354ol9"
    assert CODE in first
    assert "app_hash" not in message.extra


def test_sms_ignores_voice_and_email_options() -> None:
    plain = compose(SmsChannel(), verification(Channel.SMS))
    other = compose(
        SmsChannel(),
        verification(Channel.SMS, dtmf_digit="5", send_digits="1234", from_name="ACME"),
    )
    assert other.text == plain.text
    assert other.extra == {}


def test_whatsapp_psd2_and_warning() -> None:
    v = verification(Channel.WHATSAPP, sender="+15005550006", do_not_share_warning=True, **PAYMENT)
    message = compose(WhatsAppChannel(), v)
    assert message.channel == "whatsapp"
    assert message.sender == "+15005550006"
    assert message.text == (
        "Code 493817 confirms your payment of €39.99 to ACME Ltd with Shop."
        " Do not share this code with anyone."
    )


def test_voice_dtmf_prompt_precedes_the_code() -> None:
    v = verification(Channel.VOICE, dtmf_digit="5", send_digits="1234w5", tts_name="Polly.Joanna")
    message = compose(VoiceChannel(), v)
    assert message.channel == "voice"
    prompt = "To hear your Shop verification code, press 5."
    assert message.text.startswith(prompt + " Hello, this is Shop.")
    assert message.text.index(prompt) < message.text.index(SPOKEN)
    assert message.text.count(SPOKEN) == 2
    assert CODE not in message.text
    assert message.extra == {
        "send_digits": "1234w5",
        "dtmf_digit": "5",
        "tts_name": "Polly.Joanna",
        # what a provider that gathers the key press reads before it
        "dtmf_prompt": prompt,
    }


def test_voice_without_options_has_no_prompt_or_extra() -> None:
    message = compose(VoiceChannel(), verification(Channel.VOICE))
    assert message.text.startswith("Hello, this is Shop.")
    assert message.extra == {}


def test_voice_send_digits_alone() -> None:
    message = compose(VoiceChannel(), verification(Channel.VOICE, send_digits="1234w5"))
    assert message.text.startswith("Hello, this is Shop.")
    assert message.extra == {"send_digits": "1234w5"}


def test_voice_psd2_mentions_amount_and_payee() -> None:
    message = compose(VoiceChannel(), verification(Channel.VOICE, dtmf_digit="0", **PAYMENT))
    assert message.text.startswith(
        "To hear your Shop verification code, press 0."
        f" Code {SPOKEN} confirms your payment of €39.99 to ACME Ltd with Shop."
    )
    assert message.extra == {
        "dtmf_digit": "0",
        "dtmf_prompt": "To hear your Shop verification code, press 0.",
    }


def test_voice_warning_changes_nothing() -> None:
    plain = compose(VoiceChannel(), verification(Channel.VOICE))
    warned = compose(VoiceChannel(), verification(Channel.VOICE, do_not_share_warning=True))
    assert warned.text == plain.text


def test_email_subject_body_sender_and_extra() -> None:
    substitutions = {"username": "jdoe321", "first_name": "Jane"}
    v = verification(
        Channel.EMAIL,
        "jane@example.com",
        sender="verify@acme.test",
        from_name="ACME",
        template_id="d-0123456789abcdef",
        substitutions=substitutions,
    )
    message = compose(EmailChannel("noreply@verify.local"), v)
    assert message.channel == "email"
    assert message.to == "jane@example.com"
    assert message.sender == "verify@acme.test"
    assert message.subject == "Your Shop verification code"
    assert message.text.startswith("Hello,\n\nYour Shop verification code is:\n\n    493817\n")
    assert "10 minutes" in message.text
    assert "jdoe321" not in message.text  # substitutions feed a provider's template, not the text
    assert message.extra == {
        "from_name": "ACME",
        "template_id": "d-0123456789abcdef",
        "substitutions": substitutions,
    }


def test_email_default_sender_and_no_extra() -> None:
    message = compose(EmailChannel("noreply@verify.local"), verification(Channel.EMAIL, "a@b.test"))
    assert message.sender == "noreply@verify.local"
    assert message.extra == {}


def test_email_psd2_body_leads_with_the_payment_and_keeps_the_subject() -> None:
    plain = compose(EmailChannel("n@v.test"), verification(Channel.EMAIL, "a@b.test"))
    message = compose(EmailChannel("n@v.test"), verification(Channel.EMAIL, "a@b.test", **PAYMENT))
    assert message.subject == plain.subject
    assert message.text == (
        "Code 493817 confirms your payment of €39.99 to ACME Ltd with Shop.\n\n" + plain.text
    )


@pytest.mark.parametrize(
    "substitutions",
    ["not-a-dict", ["a", "b"], {"n": 1, "m": {"x": "y"}}, {}],
    ids=["string", "list", "no-string-values", "empty"],
)
def test_email_keeps_only_string_substitutions(substitutions: object) -> None:
    v = verification(Channel.EMAIL, "a@b.test", substitutions=substitutions)
    assert compose(EmailChannel("n@v.test"), v).extra == {}


def test_email_mixed_substitutions_keep_the_strings() -> None:
    v = verification(Channel.EMAIL, "a@b.test", substitutions={"name": "Jane", "age": 3})
    assert compose(EmailChannel("n@v.test"), v).extra == {"substitutions": {"name": "Jane"}}


def test_german_locale() -> None:
    sms = compose(SmsChannel(), verification(Channel.SMS, locale="de-de", **PAYMENT))
    assert sms.locale == "de-de"
    assert sms.text == "Der Code 493817 bestätigt Ihre Zahlung von €39.99 an ACME Ltd über Shop."
    voice = compose(VoiceChannel(), verification(Channel.VOICE, locale="de-de", dtmf_digit="3"))
    assert voice.text.startswith(
        "Um Ihren Bestätigungscode für Shop zu hören, drücken Sie die Taste 3. Guten Tag"
    )
    email = compose(
        EmailChannel("n@v.test"), verification(Channel.EMAIL, "a@b.test", locale="de-de")
    )
    assert email.subject == "Ihr Bestätigungscode für Shop"
    assert email.text.startswith("Guten Tag,")


def test_japanese_locale() -> None:
    sms = compose(
        SmsChannel(),
        verification(Channel.SMS, locale="ja-jp", do_not_share_warning=True, **PAYMENT),
    )
    assert sms.text == (
        "【Shop】ACME Ltdへの€39.99のお支払いを確認する認証コードは493817です。"
        "このコードは誰にも教えないでください。"
    )
    voice = compose(VoiceChannel(), verification(Channel.VOICE, locale="ja-jp", dtmf_digit="8"))
    assert voice.text.startswith(
        "Shopの認証コードをお聞きになるには、8を押してください。こんにちは"
    )
    assert voice.extra["dtmf_prompt"] == "Shopの認証コードをお聞きになるには、8を押してください。"
    whatsapp = compose(WhatsAppChannel(), verification(Channel.WHATSAPP, locale="ja-jp"))
    assert whatsapp.text.startswith("【Shop】認証コードは *493817* です。")


def test_bad_dtmf_digit_fails_loudly() -> None:
    with pytest.raises(ValueError, match="dtmf_digit"):
        compose(VoiceChannel(), verification(Channel.VOICE, dtmf_digit="12"))


def test_non_string_options_are_ignored() -> None:
    v = verification(Channel.SMS, amount=39.99, payee="ACME Ltd", app_hash=None)
    plain = compose(SmsChannel(), verification(Channel.SMS))
    assert compose(SmsChannel(), v).text == plain.text


def test_an_authored_template_replaces_the_catalogue_text() -> None:
    text = "${brand}: ${code} is your code, valid ${time-limit} ${time-limit-unit}"
    sms = compose(SmsChannel(), verification(Channel.SMS, template_text=text))
    assert sms.text == f"Shop: {CODE} is your code, valid 10 minutes"  # channel_timeout 600
    voice = compose(VoiceChannel(), verification(Channel.VOICE, template_text="Code ${code}"))
    assert voice.text == f"Code {SPOKEN}"  # digit by digit, as the catalogue's voice script
