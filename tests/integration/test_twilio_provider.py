"""The Twilio provider against a local Twilio peer that checks every form against Twilio's
OpenAPI, and Twilio's signed callbacks (signed by the `twilio` package) against the web side."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import MultiDict

from orchestrator.delivery.receipts import BadReceipt, ForgedReceipt, Receipt, ReceiptRequest
from orchestrator.delivery.twilio import (
    TwilioConfig,
    answer_gather,
    read_receipts,
    say_language,
    signature,
    split_prompt,
)
from orchestrator.engine.codes import SecretCodeTools
from tests.support.twilio_peer import TwilioPeer
from workers.channels.base import OutboundMessage
from workers.providers.base import Accepted, ProviderContext, ProviderError
from workers.providers.twilio import TwilioProvider

NAME = "twilio-us"
SENDER = "+15005550006"
TO = "4915112345678"
CODE = "482913"
SPOKEN = "4, 8, 2, 9, 1, 3"
SCRIPT = f"Hello, this is Acme. Your verification code is: {SPOKEN}. Once again, your code is: {SPOKEN}. Goodbye."
PROMPT = "To hear your Acme verification code, press 5."
TOOLS = SecretCodeTools(b"0123456789abcdef0123456789abcdef")
Peer, Http = TwilioPeer, aiohttp.ClientSession  # short names for the tests' signatures


def message(channel: str = "sms", **overrides: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "id": "req-1:0",
        "tenant": "acme",
        "request_id": "req-1",
        "channel": channel,
        "to": TO,
        "sender": "Acme",
        "text": f"Your Acme code is {CODE}" if channel != "voice" else SCRIPT,
        "code": CODE,
        "locale": "en-us",
    }
    values.update(overrides)
    return OutboundMessage(**values)


def config_for(peer: TwilioPeer, **overrides: Any) -> TwilioConfig:
    values: dict[str, Any] = {
        "kind": "twilio",
        "account_sid": peer.account_sid,
        "auth_token": peer.auth_token,
        "from": SENDER,
        "base_url": peer.base_url,
        "timeout_seconds": 5,
    }
    values.update(overrides)
    return TwilioConfig.model_validate(values)


@dataclass
class WebSide:
    """The web process's two Twilio routes, as the lead wires them: aiohttp request in,
    ReceiptRequest to the pure functions, 403 for a forged post."""

    config: TwilioConfig
    url: str = ""
    receipts: list[Receipt] = field(default_factory=list)

    @staticmethod
    async def _request(request: web.Request) -> ReceiptRequest:
        return ReceiptRequest(
            method=request.method,
            url=str(request.url),
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query),
            body=await request.read(),
        )

    async def status(self, request: web.Request) -> web.Response:
        try:
            self.receipts += read_receipts(self.config, await self._request(request))
        except ForgedReceipt:
            return web.Response(status=403)
        except BadReceipt:
            return web.Response(status=400)
        return web.Response(status=200)

    async def gather(self, request: web.Request) -> web.Response:
        try:
            twiml = answer_gather(self.config, await self._request(request), TOOLS.unseal)
        except ForgedReceipt:
            return web.Response(status=403)
        return web.Response(text=twiml, content_type="text/xml")


@pytest.fixture
async def peer() -> AsyncIterator[TwilioPeer]:
    async with TwilioPeer(numbers=(SENDER,)) as p:
        yield p


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def web_side(peer: TwilioPeer) -> AsyncIterator[WebSide]:
    side = WebSide(config_for(peer))
    app = web.Application()
    app.router.add_post("/providers/{name}/status", side.status)
    app.router.add_post("/providers/{name}/gather", side.gather)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    side.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield side
    await runner.cleanup()


def provider(peer: Peer, http: Http, public_url: str, **config: Any) -> TwilioProvider:
    async def on_receipt(name: str, receipt: Receipt) -> None:
        raise AssertionError("Twilio receipts come over HTTP, never in-band")

    context = ProviderContext(http, public_url, TOOLS.seal, on_receipt)
    return TwilioProvider(NAME, config_for(peer, **config), context)


# ---------------------------------------------------------------- SMS and WhatsApp


async def test_sms_is_accepted_with_the_message_sid(peer: Peer, http: Http) -> None:
    accepted = await provider(peer, http, "https://verify.example.com/").send(message())
    assert isinstance(accepted, Accepted)
    assert re.fullmatch(r"SM[0-9a-f]{32}", accepted.provider_id)
    (sent,) = peer.sent("CreateMessage")
    assert sent.resource is not None and sent.resource["sid"] == accepted.provider_id
    assert dict(sent.form) == {
        "To": f"+{TO}",
        "From": SENDER,
        "Body": f"Your Acme code is {CODE}",
        "StatusCallback": f"https://verify.example.com/providers/{NAME}/status",
    }


async def test_sms_through_a_messaging_service(peer: Peer, http: Http) -> None:
    service = peer.messaging_services[0]
    twilio = provider(
        peer,
        http,
        "https://v.example.com",
        channels=["sms"],
        messaging_service_sid=service,
        **{"from": None},
    )
    accepted = await twilio.send(message())
    (sent,) = peer.sent("CreateMessage")
    assert sent.get("MessagingServiceSid") == service
    assert sent.get("From") is None
    assert sent.resource is not None and sent.resource["sid"] == accepted.provider_id


async def test_whatsapp_addresses_and_template(peer: Peer, http: Http) -> None:
    content_sid = "HX" + "c" * 32
    twilio = provider(
        peer,
        http,
        "https://v.example.com",
        channels=["sms", "whatsapp", "voice"],
        whatsapp_content_sid=content_sid,
    )
    await twilio.send(message("whatsapp"))
    (sent,) = peer.sent("CreateMessage")
    assert sent.get("To") == f"whatsapp:+{TO}"
    assert sent.get("From") == f"whatsapp:{SENDER}"
    assert sent.get("ContentSid") == content_sid
    assert sent.get("ContentVariables") == '{"1": "482913"}'
    assert sent.get("Body") is None


async def test_a_channel_the_provider_does_not_carry(peer: Peer, http: Http) -> None:
    with pytest.raises(ProviderError, match="does not carry whatsapp"):
        await provider(peer, http, "https://v.example.com").send(message("whatsapp"))
    assert peer.received == []


# ---------------------------------------------------------------- voice


def twiml_of(peer: TwilioPeer) -> ET.Element:
    (sent,) = peer.sent("CreateCall")
    return ET.fromstring(sent.get("Twiml") or "")  # noqa: S314 - our own provider's TwiML


async def test_voice_says_the_script_in_the_locale(peer: Peer, http: Http) -> None:
    accepted = await provider(peer, http, "https://v.example.com").send(message("voice"))
    assert re.fullmatch(r"CA[0-9a-f]{32}", accepted.provider_id)
    (sent,) = peer.sent("CreateCall")
    assert sent.get("To") == f"+{TO}" and sent.get("From") == SENDER
    assert sent.getall("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]
    assert sent.get("StatusCallback") == f"https://v.example.com/providers/{NAME}/status"
    root = twiml_of(peer)
    (say,) = root
    assert say.tag == "Say" and say.attrib == {"language": "en-US", "voice": "alice"}
    assert say.text == SCRIPT and say.text.count(SPOKEN) == 2


async def test_voice_in_german_with_a_configured_voice(peer: Peer, http: Http) -> None:
    twilio = provider(peer, http, "https://v.example.com", voices={"de-DE": "Polly.Vicki-Neural"})
    text = "Ihr Code: 1, 2 & <3>."
    await twilio.send(message("voice", locale="de-de", text=text, extra={"send_digits": "ww1"}))
    (sent,) = peer.sent("CreateCall")
    assert sent.get("SendDigits") == "ww1"
    (say,) = twiml_of(peer)
    assert say.attrib == {"language": "de-DE", "voice": "Polly.Vicki-Neural"}
    assert say.text == text  # escaped on the way, whole on arrival


async def test_voice_with_a_key_to_press_reads_the_code_after_the_key(
    peer: Peer, http: Http, web_side: WebSide
) -> None:
    twilio = provider(peer, http, web_side.url)
    extra = {"dtmf_digit": "5", "dtmf_prompt": PROMPT}
    accepted = await twilio.send(message("voice", text=f"{PROMPT} {SCRIPT}", extra=extra))
    (sent,) = peer.sent("CreateCall")
    assert CODE not in (sent.get("Twiml") or "") and SPOKEN not in (sent.get("Twiml") or "")
    gather, goodbye, hangup = twiml_of(peer)
    assert gather.tag == "Gather" and goodbye.tag == "Say" and hangup.tag == "Hangup"
    assert gather.attrib["numDigits"] == "1" and gather.attrib["method"] == "POST"
    assert gather.attrib["action"].startswith(f"{web_side.url}/providers/{NAME}/gather?t=")
    (prompt,) = gather
    assert prompt.text == PROMPT and prompt.attrib["language"] == "en-US"

    # the callee presses 5: Twilio posts Digits to the action, signed, and hears the script
    status, body = await peer.press(accepted.provider_id, "5")
    assert status == 200
    (say, end) = ET.fromstring(body)  # noqa: S314 - our own web side's TwiML
    assert say.text == SCRIPT and say.attrib == {"language": "en-US", "voice": "alice"}
    assert end.tag == "Hangup"

    # a wrong key hangs up without the code
    status, body = await peer.press(accepted.provider_id, "4")
    assert status == 200 and SPOKEN not in body and body.endswith("<Hangup /></Response>")

    # a post Twilio did not sign, or with a token we did not seal, is refused
    action = peer.gather_action(accepted.provider_id)
    params = peer.gather_params(accepted.provider_id, "5")
    assert (await peer.post(action, params, auth_token="0" * 32))[0] == 403
    forged = action.split("?t=")[0] + "?t=a.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    assert (await peer.post(forged, params))[0] == 403


async def test_the_hash_key_is_pressable(peer: Peer, http: Http, web_side: WebSide) -> None:
    twilio = provider(peer, http, web_side.url)
    text = f"To hear your code, press #. {SCRIPT}"
    accepted = await twilio.send(message("voice", text=text, extra={"dtmf_digit": "#"}))
    (gather, *_) = twiml_of(peer)
    assert gather.attrib["finishOnKey"] == ""  # else "#" would end the input empty
    assert gather[0].text == "To hear your code, press #."  # the first sentence, no prompt given
    status, body = await peer.press(accepted.provider_id, "#")
    assert status == 200 and SCRIPT in body


# ---------------------------------------------------------------- Twilio refusing


async def test_an_invalid_number_is_twilio_21211(peer: Peer, http: Http) -> None:
    with pytest.raises(ProviderError, match=r"^twilio 21211: Invalid 'To' Phone Number"):
        await provider(peer, http, "https://v.example.com").send(message(to="0123"))


async def test_a_refused_recipient(peer: Peer, http: Http) -> None:
    peer.refuse(f"+{TO}")
    twilio = provider(peer, http, "https://v.example.com")
    with pytest.raises(ProviderError, match=r"^twilio 21610: Attempt to send to unsubscribed"):
        await twilio.send(message())
    with pytest.raises(ProviderError, match=r"^twilio 21610"):
        await twilio.send(message("voice"))


async def test_a_wrong_auth_token_is_twilio_20003(peer: Peer, http: Http) -> None:
    twilio = provider(peer, http, "https://v.example.com", auth_token="f" * 32)
    with pytest.raises(ProviderError) as caught:
        await twilio.send(message())
    assert str(caught.value) == "twilio 20003: Authenticate"
    assert "f" * 32 not in str(caught.value)


async def test_a_5xx_is_a_provider_error(peer: Peer, http: Http) -> None:
    peer.fail_status = 500
    with pytest.raises(ProviderError, match=r"^twilio 20500"):
        await provider(peer, http, "https://v.example.com").send(message())


async def test_a_hang_is_a_timeout(peer: Peer, http: Http) -> None:
    peer.hang = True
    twilio = provider(peer, http, "https://v.example.com", timeout_seconds=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await twilio.send(message())
    assert loop.time() - started < 3


async def test_nobody_listening_is_a_provider_error(peer: Peer, http: Http) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    twilio = provider(peer, http, "https://v.example.com", base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ProviderError, match="unreachable"):
        await twilio.send(message())


async def test_the_peer_refuses_a_field_twilio_does_not_define(peer: Peer, http: Http) -> None:
    """The peer is strict, so the provider's passing forms mean something."""
    url = f"{peer.base_url}/2010-04-01/Accounts/{peer.account_sid}/Messages.json"
    credentials = base64.b64encode(f"{peer.account_sid}:{peer.auth_token}".encode()).decode()
    auth = {"Authorization": f"Basic {credentials}"}
    form = {"To": "+15551230000", "From": SENDER, "Body": "hi", "Priority": "high"}
    async with http.post(url, data=form, headers=auth) as response:
        assert response.status == 400
        body = await response.json()
    assert body["code"] == 20001 and "Priority" in body["message"]
    assert set(body) == {"code", "message", "more_info", "status"}
    form = {"To": "+15551230000", "From": SENDER, "Body": "hi", "ProvideFeedback": "maybe"}
    async with http.post(url, data=form, headers=auth) as response:
        assert response.status == 400
    calls = url.replace("Messages.json", "Calls.json")
    for twiml in ("<Response><Speak>hi</Speak></Response>", "<Response><Say>hi</Response>"):
        form = {"To": "+15551230000", "From": SENDER, "Twiml": twiml}
        async with http.post(calls, data=form, headers=auth) as response:
            assert response.status == 400 and (await response.json())["code"] == 12100


# ---------------------------------------------------------------- receipts


def receipt_request(
    peer: TwilioPeer, url: str, params: list[tuple[str, str]], **sign: Any
) -> ReceiptRequest:
    headers, body = peer.signed(url, params, **sign)
    return ReceiptRequest("POST", url, {k.lower(): v for k, v in headers.items()}, {}, body)


STATUS_URL = f"https://verify.example.com/providers/{NAME}/status"


async def sent_sms(peer: Peer, http: Http) -> tuple[TwilioConfig, str]:
    twilio = provider(peer, http, "https://verify.example.com")
    return twilio.config, (await twilio.send(message())).provider_id


def pairs(table: str) -> list[tuple[str, ...]]:
    return [tuple(item.split("=")) for item in table.split()]


MESSAGE_STATUSES = "queued=sent accepted=sent sending=sent sent=sent delivered=delivered read=delivered undelivered=failed failed=failed canceled=failed"
CALL_STATUSES = "initiated=sent ringing=sent in-progress=sent completed=delivered busy=failed no-answer=failed failed=failed canceled=failed"


@pytest.mark.parametrize(("raw", "status"), pairs(MESSAGE_STATUSES))
async def test_message_statuses(peer: Peer, http: Http, raw: str, status: str) -> None:
    config, sid = await sent_sms(peer, http)
    params = peer.message_status_params(sid, raw, "30003" if status == "failed" else None)
    receipts = read_receipts(config, receipt_request(peer, STATUS_URL, params))
    error = "30003" if status == "failed" else None
    assert receipts == [Receipt(sid, status, error, raw)]  # type: ignore[arg-type]


async def test_receipts_that_are_not_twilio_s(peer: Peer, http: Http) -> None:
    config, sid = await sent_sms(peer, http)
    params = peer.message_status_params(sid, "delivered")
    good = receipt_request(peer, STATUS_URL, params)
    tampered = [(k, "undelivered" if k == "MessageStatus" else v) for k, v in params]
    _, tampered_body = peer.signed(STATUS_URL, tampered)
    unsigned = {k: v for k, v in good.headers.items() if k != "x-twilio-signature"}
    cases = {
        "tampered": ReceiptRequest("POST", STATUS_URL, good.headers, {}, tampered_body),
        "wrong token": receipt_request(peer, STATUS_URL, params, auth_token="0" * 32),
        "no header": ReceiptRequest("POST", STATUS_URL, unsigned, {}, good.body),
        "other url": ReceiptRequest(
            "POST", STATUS_URL.replace("status", "gather"), good.headers, {}, good.body
        ),
        "not utf-8": ReceiptRequest("POST", STATUS_URL, good.headers, {}, b"\xff\xfe"),
    }
    for case, request in cases.items():
        with pytest.raises(ForgedReceipt):
            read_receipts(config, request)
            pytest.fail(case)


async def test_the_port_may_be_signed_or_not(peer: Peer, http: Http) -> None:
    config, sid = await sent_sms(peer, http)
    params = peer.message_status_params(sid, "delivered")
    headers, body = peer.signed(STATUS_URL.replace(".com/", ".com:443/"), params)
    request = ReceiptRequest(
        "POST", STATUS_URL, {k.lower(): v for k, v in headers.items()}, {}, body
    )
    assert read_receipts(config, request)[0].status == "delivered"


async def test_signed_but_not_a_status(peer: Peer, http: Http) -> None:
    config, sid = await sent_sms(peer, http)
    inbound = [
        (k, "received" if k in ("MessageStatus", "SmsStatus") else v)
        for k, v in peer.message_status_params(sid, "x")
    ]
    assert read_receipts(config, receipt_request(peer, STATUS_URL, inbound)) == []
    with pytest.raises(BadReceipt):
        read_receipts(config, receipt_request(peer, STATUS_URL, [("AccountSid", peer.account_sid)]))
    with pytest.raises(BadReceipt):
        read_receipts(config, receipt_request(peer, STATUS_URL, [("MessageSid", sid)]))


@pytest.mark.parametrize(("raw", "status"), pairs(CALL_STATUSES))
async def test_call_statuses(peer: Peer, http: Http, raw: str, status: str) -> None:
    twilio = provider(peer, http, "https://verify.example.com")
    sid = (await twilio.send(message("voice"))).provider_id
    request = receipt_request(peer, STATUS_URL, peer.call_status_params(sid, raw))
    assert read_receipts(twilio.config, request) == [Receipt(sid, status, None, raw)]  # type: ignore[arg-type]


async def test_status_callbacks_reach_the_web_side(
    peer: Peer, http: Http, web_side: WebSide
) -> None:
    twilio = provider(peer, http, web_side.url)
    sms = (await twilio.send(message())).provider_id
    call = (await twilio.send(message("voice"))).provider_id
    assert (await peer.send_status(sms, "undelivered", "30005"))[0] == 200
    assert (await peer.send_status(call, "no-answer"))[0] == 200
    assert web_side.receipts == [
        Receipt(sms, "failed", "30005", "undelivered"),
        Receipt(call, "failed", None, "no-answer"),
    ]
    stranger = TwilioPeer(account_sid=peer.account_sid)  # another auth token signs it
    url = f"{web_side.url}/providers/{NAME}/status"
    try:
        assert (await stranger.post(url, peer.message_status_params(sms, "delivered")))[0] == 403
    finally:
        await stranger.__aexit__(None, None, None)


# ---------------------------------------------------------------- pure pieces


def test_signature_matches_twilio_s_published_example() -> None:
    # the worked example of Twilio's webhook-security page
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_signature_agrees_with_twilio_s_validator() -> None:
    from twilio.request_validator import RequestValidator

    validator = RequestValidator("s3cr3t")
    url = "https://verify.example.com:8443/providers/x/gather?t=a.b-c_d"
    pairs = [("Digits", "5"), ("B", "ü 1&2"), ("A", "z"), ("A", "a"), ("Empty", "")]
    assert signature("s3cr3t", url, pairs) == validator.compute_signature(url, MultiDict(pairs))
    assert validator.validate(url, {}, signature("s3cr3t", url))


def gather_request(
    config: TwilioConfig, token: str, digits: str, key: str | None = None
) -> ReceiptRequest:
    url = f"https://v.example.com/providers/{NAME}/gather?t={token}"
    params = [("CallSid", "CA" + "1" * 32), ("Digits", digits)]
    headers = {
        "x-twilio-signature": signature(key or config.auth_token.get_secret_value(), url, params),
        "content-type": "application/x-www-form-urlencoded",
    }
    body = "&".join(f"{k}={v}" for k, v in params).encode()
    return ReceiptRequest("POST", url, headers, {"t": token}, body)


def test_answer_gather_directly() -> None:
    config = TwilioConfig.model_validate(
        {"kind": "twilio", "account_sid": "AC" + "0" * 32, "auth_token": "t0k3n", "from": SENDER}
    )
    token = TOOLS.seal('{"d":"7","s":"Ihr Code: 1, 2 & 3.","l":"de-DE","v":null}')
    right = answer_gather(config, gather_request(config, token, "7"), TOOLS.unseal)
    assert (
        right
        == '<Response><Say language="de-DE">Ihr Code: 1, 2 &amp; 3.</Say><Hangup /></Response>'
    )
    wrong = answer_gather(config, gather_request(config, token, "8"), TOOLS.unseal)
    assert "Code" not in wrong and "Taste" in wrong
    with pytest.raises(ForgedReceipt):
        answer_gather(config, gather_request(config, token, "7", key="other"), TOOLS.unseal)
    with pytest.raises(ForgedReceipt):
        answer_gather(config, gather_request(config, "a.bogus", "7"), TOOLS.unseal)
    with pytest.raises(ForgedReceipt):
        answer_gather(config, gather_request(config, TOOLS.seal("not json"), "7"), TOOLS.unseal)
    with pytest.raises(ForgedReceipt):
        answer_gather(config, gather_request(config, "", "7"), TOOLS.unseal)


@pytest.mark.parametrize(
    ("locale", "tag"),
    [
        *pairs("en-us=en-US de-de=de-DE en_GB=en-GB pt=pt-BR tl-ph=fil-PH zh-tw=zh-TW xx=en-US"),
        ("", "en-US"),
        ("12-34", "en-US"),
    ],
)
def test_say_language(locale: str, tag: str) -> None:
    assert say_language(locale) == tag


def test_split_prompt() -> None:
    assert split_prompt(f"{PROMPT} {SCRIPT}", PROMPT) == (PROMPT, SCRIPT)
    assert split_prompt(f"{PROMPT} {SCRIPT}", None) == (PROMPT, SCRIPT)
    chinese = "如需收听验证码，请按5。您的验证码是：1。"  # noqa: RUF001 - CJK punctuation on purpose
    assert split_prompt(chinese, None) == (chinese[:12], chinese[12:])
    assert split_prompt("www.acme.com code 1", None) == (
        "www.acme.com code 1",
        "www.acme.com code 1",
    )


def test_config_faults() -> None:
    base = {"kind": "twilio", "account_sid": "AC" + "a" * 32, "auth_token": "x"}
    with pytest.raises(ValueError, match="sms needs"):
        TwilioConfig.model_validate({**base, "channels": ["sms"]})
    with pytest.raises(ValueError, match=r"voice needs an E\.164"):
        TwilioConfig.model_validate({**base, "from": "ACME"})
    assert (
        TwilioConfig.model_validate({**base, "from": "ACME", "voice_from": SENDER}).caller_id
        == SENDER
    )
    with pytest.raises(ValueError, match="account_sid"):
        TwilioConfig.model_validate({**base, "account_sid": "AC12", "from": SENDER})
    with pytest.raises(ValueError, match="channels"):
        TwilioConfig.model_validate({**base, "from": SENDER, "channels": ["email"]})
    with pytest.raises(ValueError, match="Extra inputs"):
        TwilioConfig.model_validate({**base, "from": SENDER, "form": SENDER})


# last: providers_file imports every kind's module, so this passes once all four exist
def test_the_issue_s_toml_keys_load(tmp_path: Path) -> None:
    from orchestrator.delivery.providers_file import load_delivery

    path = tmp_path / "providers.toml"
    path.write_text(
        f"""
[providers.twilio-us]
kind = "twilio"
account_sid = "AC{"0" * 32}"
from = "{SENDER}"
base_url = "http://127.0.0.1:9"

[providers.twilio-mg]
kind = "twilio"
account_sid = "AC{"1" * 32}"
auth_token = "in-the-file"
channels = ["sms"]
messaging_service_sid = "MG{"2" * 32}"

[routes.sms]
default = ["twilio-us", "twilio-mg"]

[routes.voice]
default = ["twilio-us"]
"""
    )
    environ = {"VERIFY_PROVIDER_TWILIO_US_AUTH_TOKEN": "from-the-env"}
    delivery = load_delivery(path, {}, environ, sandbox=False)
    us, mg = delivery.providers["twilio-us"], delivery.providers["twilio-mg"]
    assert isinstance(us, TwilioConfig) and isinstance(mg, TwilioConfig)
    assert us.from_ == SENDER and us.base_url == "http://127.0.0.1:9"
    assert us.auth_token.get_secret_value() == "from-the-env"
    assert mg.messaging_service_sid == "MG" + "2" * 32 and mg.base_url == "https://api.twilio.com"
    assert delivery.route("voice", TO) == ("twilio-us",)
