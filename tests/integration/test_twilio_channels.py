"""Twilio Verify channels end to end, through the official `twilio` SDK and the sandbox outbox."""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped]
from twilio.rest.verify.v2.service import ServiceContext  # type: ignore[import-untyped]

from tests.support.processes import Stack, wait_until
from tests.support.twilio import sdk_client


class Account:
    def __init__(self, stack: Stack) -> None:
        data = stack.cli("accounts", "create", "--name", "twilio-channels")
        assert isinstance(data, dict)
        self.sid = str(data["account_sid"])
        self.token = str(data["auth_token"])
        self.stack = stack
        self.client = sdk_client(stack, self.sid, self.token)

    def service(self, **params: Any) -> ServiceContext:
        created = self.client.verify.v2.services.create(friendly_name="Acme", **params)
        assert created.sid is not None
        return self.client.verify.v2.services(created.sid)

    def outbox(self, to: str) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.stack.url}/sandbox/v1/messages",
            params={"to": to},
            auth=(self.sid, self.token),
            verify=str(self.stack.cert),
            timeout=10,
        )
        response.raise_for_status()
        found = response.json()
        assert isinstance(found, list)
        return found

    def delivered(self, to: str, count: int = 1) -> dict[str, Any]:
        """The newest message to `to`, once `count` have arrived."""
        messages = wait_until(
            lambda: (found := self.outbox(to)) and len(found) >= count and found,
            timeout=15,
            what=f"{count} sandbox message(s) to {to}",
        )
        newest = messages[0]
        assert isinstance(newest, dict)
        return newest


@pytest.fixture(scope="module")
def account(stack: Stack) -> Account:
    return Account(stack)


def uk_number() -> str:
    return "+4477009" + f"{random.randrange(10**5):05d}"


def spanish_number() -> str:
    return "+346" + f"{random.randrange(10**8):08d}"


def code_in(text: str) -> str:
    match = re.search(r"\b\d{4,10}\b", text)
    assert match, text
    return match.group(0)


def test_call_with_dtmf_input_and_send_digits(account: Account) -> None:
    service = account.service(dtmf_input_required=True, tts_name="Polly.Amy")
    to = uk_number()
    verification = service.verifications.create(to=to, channel="call", send_digits="1234w5")
    assert verification.channel == "call"
    assert verification.status == "pending"
    message = account.delivered(to)
    assert message["channel"] == "voice"
    extra = message["extra"]
    digit = extra["dtmf_digit"]
    assert re.fullmatch(r"[0-9]", digit)
    assert extra["send_digits"] == "1234w5"
    assert extra["tts_name"] == "Polly.Amy"
    prompt = f"To hear your Acme verification code, please press {digit}."  # en-gb: +44
    assert message["text"].startswith(prompt + " Hello, this is Acme.")
    spoken = ", ".join(message["code"])
    assert message["text"].count(spoken) == 2
    assert message["text"].index(prompt) < message["text"].index(spoken)


def test_call_without_dtmf_has_no_prompt(account: Account) -> None:
    service = account.service()
    to = uk_number()
    service.verifications.create(to=to, channel="call")
    message = account.delivered(to)
    assert message["text"].startswith("Hello, this is Acme.")
    assert "extra" not in message


def test_psd2_sms_names_amount_and_payee(account: Account) -> None:
    service = account.service(psd2_enabled=True, do_not_share_warning_enabled=True)
    to = uk_number()
    verification = service.verifications.create(
        to=to, channel="sms", amount="€39.99", payee="ACME Ltd"
    )
    assert verification.amount == "€39.99"
    assert verification.payee == "ACME Ltd"
    fetched = service.verifications(verification.sid).fetch()
    assert (fetched.amount, fetched.payee) == ("€39.99", "ACME Ltd")
    message = account.delivered(to)
    code = message["code"]
    assert message["text"] == (
        f"Code {code} confirms your payment of €39.99 to ACME Ltd with Acme."
        " Please don't share this code with anyone."
    )
    check = service.verification_checks.create(to=to, code=code, amount="€39.99", payee="ACME Ltd")
    assert check.status == "approved"
    assert check.valid is True


def test_psd2_call_states_the_payment(account: Account) -> None:
    service = account.service(psd2_enabled=True)
    to = uk_number()
    service.verifications.create(to=to, channel="call", amount="€12.00", payee="Bakery")
    message = account.delivered(to)
    spoken = ", ".join(message["code"])
    assert message["text"].startswith(
        f"Code {spoken} confirms your payment of €12.00 to Bakery with Acme. Hello, this is Acme."
    )


def test_amount_needs_psd2_enabled(account: Account) -> None:
    service = account.service()
    with pytest.raises(TwilioRestException) as caught:
        service.verifications.create(
            to=uk_number(), channel="sms", amount="€39.99", payee="ACME Ltd"
        )
    assert caught.value.status == 400
    assert caught.value.code == 60200


def test_custom_friendly_name_is_the_brand(account: Account) -> None:
    service = account.service()
    to = uk_number()
    service.verifications.create(to=to, channel="sms", custom_friendly_name="Shop")
    message = account.delivered(to)
    assert message["text"].startswith(f"Shop: your verification code is {message['code']}.")
    assert "Acme" not in message["text"]


def test_locale_parameter_picks_french(account: Account) -> None:
    service = account.service()
    to = uk_number()
    service.verifications.create(to=to, channel="sms", locale="fr")
    message = account.delivered(to)
    assert message["locale"] == "fr-fr"
    assert message["text"] == (
        f"Acme : votre code de vérification est {message['code']}. Il expire dans 10 minutes."
        " Ne le communiquez à personne."
    )


def test_spanish_number_gets_spanish(account: Account) -> None:
    service = account.service()
    to = spanish_number()
    service.verifications.create(to=to, channel="sms")
    message = account.delivered(to)
    assert message["locale"] == "es-es"
    assert message["text"].startswith(f"Acme: tu código de verificación es {message['code']}.")
    assert "Caduca en 10 minutos." in message["text"]


def test_spanish_psd2_with_locale_override(account: Account) -> None:
    service = account.service(psd2_enabled=True)
    to = spanish_number()
    service.verifications.create(to=to, channel="sms", locale="de", amount="5 €", payee="Café")
    message = account.delivered(to)
    assert message["locale"] == "de-de"
    assert message["text"] == (
        f"Der Code {message['code']} bestätigt Ihre Zahlung von 5 € an Café über Acme."
    )


def test_whatsapp_delivers(account: Account) -> None:
    service = account.service()
    to = uk_number()
    verification = service.verifications.create(to=to, channel="whatsapp")
    assert verification.channel == "whatsapp"
    message = account.delivered(to)
    assert message["channel"] == "whatsapp"
    code = message["code"]
    assert message["text"].startswith(f"*{code}* is your Acme verification code.")
    check = service.verification_checks.create(to=to, code=code)
    assert check.status == "approved"


def test_email_delivers_with_channel_configuration(account: Account) -> None:
    service = account.service()
    to = f"{uuid.uuid4().hex[:12]}@example.com"
    verification = service.verifications.create(
        to=to,
        channel="email",
        channel_configuration={
            "from": "verify@acme.test",
            "from_name": "ACME",
            "substitutions": {"username": "jdoe321"},
        },
    )
    assert verification.channel == "email"
    assert verification.to == to
    message = account.delivered(to)
    assert message["channel"] == "email"
    assert message["from"] == "verify@acme.test"
    assert message["subject"] == "Your Acme verification code"
    assert message["locale"] == "en-us"
    assert f"\n    {message['code']}\n" in message["text"]
    assert "jdoe321" not in message["text"]
    assert message["extra"] == {"from_name": "ACME", "substitutions": {"username": "jdoe321"}}
    check = service.verification_checks.create(to=to, code=message["code"])
    assert check.status == "approved"


def test_custom_code_needs_custom_code_enabled(account: Account) -> None:
    service = account.service()
    with pytest.raises(TwilioRestException) as caught:
        service.verifications.create(to=uk_number(), channel="sms", custom_code="867530")
    assert caught.value.status == 400
    assert caught.value.code == 60200


def test_custom_code_is_sent_and_approved(account: Account) -> None:
    service = account.service(custom_code_enabled=True)
    to = uk_number()
    service.verifications.create(to=to, channel="sms", custom_code="867530")
    message = account.delivered(to)
    assert message["code"] == "867530"
    assert code_in(message["text"]) == "867530"
    wrong = service.verification_checks.create(to=to, code="111111")
    assert wrong.status == "pending"
    check = service.verification_checks.create(to=to, code="867530")
    assert check.status == "approved"
    assert check.valid is True
