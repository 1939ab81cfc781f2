"""A local stand-in for Twilio's REST API v2010 (Messages.json, Calls.json), strict where Twilio is.

Each create request is checked against Twilio's own OpenAPI description
(`shared/reference/providers/twilio_api_v2010_messages_calls.json`): the form is read into the
types its CreateMessageRequest / CreateCallRequest schema gives (a list field is its name
repeated), then validated against that schema with its $refs resolved and closed
(additionalProperties: false), so a field Twilio does not define fails. The peer then checks
what the schema leaves to prose: HTTP Basic auth with the account SID and auth token, E.164 `To`,
a sender of the account, a body, and TwiML that is well-formed and made of TwiML verbs only.

It answers as Twilio does: 201 with the Message / Call resource (checked against the spec's
response schema too), or `{code, message, more_info, status}` with Twilio's error codes.

It can also play Twilio's callback side: StatusCallback posts and Gather answers, signed by the
`twilio` package's own RequestValidator (not by the code under test).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
from aiohttp import web
from jsonschema import Draft7Validator
from multidict import MultiDict
from twilio.request_validator import RequestValidator

SPEC = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "reference"
    / "providers"
    / "twilio_api_v2010_messages_calls.json"
)
_ROOT = "/2010-04-01/Accounts/{AccountSid}"
OPERATIONS = {"Messages": "CreateMessage", "Calls": "CreateCall"}
_SCHEMAS = {
    "CreateMessage": ("/Messages.json", "api.v2010.account.message"),
    "CreateCall": ("/Calls.json", "api.v2010.account.call"),
}

# TwiML (voice): the verbs and nouns Twilio knows, and the SSML tags <Say> may hold
TWIML_ELEMENTS = frozenset(
    "Response Say Play Pause Gather Hangup Redirect Reject Dial Number Client Conference Queue "
    "Sip Record Enqueue Leave Connect Stream Start Stop Siprec Transcription Parameter Pay "
    "Prompt Refer Echo Sms Identity Application Room VirtualAgent Config".split()
)
SSML_ELEMENTS = frozenset(
    "break emphasis lang p phoneme prosody s say-as sub w amazon:domain amazon:effect".split()
)
_ATTRIBUTES = {
    "Say": {"voice", "language", "loop"},
    "Pause": {"length"},
    "Hangup": set(),
    "Gather": {
        "action", "method", "timeout", "numDigits", "finishOnKey", "input", "language",
        "speechTimeout", "speechModel", "hints", "profanityFilter", "enhanced",
        "actionOnEmptyResult", "partialResultCallback", "partialResultCallbackMethod",
        "bargeIn", "debug",
    },
}  # fmt: skip
# Twilio's codes for a required parameter left out, per operation
_MISSING = {
    ("CreateMessage", "To"): (21604, "A 'To' phone number is required."),
    ("CreateCall", "To"): (21201, "No 'To' number is specified"),
    ("CreateCall", "From"): (21213, "No 'From' number is specified"),
}
_GATHER_NESTED = {"Say", "Play", "Pause"}
_DTMF_KEYS = set("0123456789*#")


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    """Twilio's error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class Refusal(Exception):
    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# ---------------------------------------------------------------- the spec


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part]
            return _resolve(target, root)
        return {k: _resolve(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    return node


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema's type union with null; objects closed."""
    if isinstance(node, dict):
        out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable") is True:
            if "type" in out:
                out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_openapi_to_jsonschema(v) for v in node]
    return node


def load_spec(path: Path = SPEC) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def request_schema(operation: str, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The closed form schema of CreateMessage / CreateCall."""
    spec = spec or load_spec()
    path = _ROOT + _SCHEMAS[operation][0]
    op = spec["paths"][path]["post"]
    assert op["operationId"] == operation
    schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    return _openapi_to_jsonschema(_resolve(copy.deepcopy(schema), spec))


def response_schema(operation: str, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    spec = spec or load_spec()
    schema = spec["components"]["schemas"][_SCHEMAS[operation][1]]
    return _openapi_to_jsonschema(_resolve(copy.deepcopy(schema), spec))


def typed_form(pairs: list[tuple[str, str]], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The form as the JSON values its schema describes; Refusal for what can't be read so."""
    properties: Mapping[str, Any] = schema["properties"]
    unknown = sorted({name for name, _ in pairs if name not in properties})
    if unknown:
        raise Refusal(20001, f"Unknown parameters: {', '.join(unknown)}")
    typed: dict[str, Any] = {}
    for name, value in pairs:
        kind = properties[name].get("type")
        if kind == "array":
            typed.setdefault(name, []).append(value)
            continue
        if name in typed:
            raise Refusal(20001, f"Parameter '{name}' given more than once")
        try:
            if kind == "integer":
                typed[name] = int(value)
            elif kind == "number":
                typed[name] = float(value)
            elif kind == "boolean":
                if value.lower() not in ("true", "false"):
                    raise ValueError(value)
                typed[name] = value.lower() == "true"
            else:
                typed[name] = value
        except ValueError:
            raise Refusal(20001, f"Invalid value for parameter '{name}'") from None
        if properties[name].get("format") == "uri" and not _absolute_url(value):
            raise Refusal(21205, f"Invalid url for parameter '{name}'")
    return typed


def _absolute_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _e164(value: str) -> bool:
    digits = value[1:]
    return (
        value.startswith("+") and digits.isdigit() and 2 <= len(digits) <= 15 and digits[0] != "0"
    )


def check_twiml(text: str) -> ET.Element:
    """A TwiML document as Twilio would run it; Refusal(12100) for anything else."""
    if len(text) > 4000:
        raise Refusal(12100, "Twiml exceeds 4000 characters")
    try:
        root = ET.fromstring(text)  # noqa: S314 - the peer parses what the test's code built
    except ET.ParseError as exc:
        raise Refusal(12100, f"Document parse failure: {exc}") from None
    if root.tag != "Response":
        raise Refusal(12100, "TwiML must have <Response> as its root")
    for parent in root.iter():
        for child in parent:
            if parent.tag == "Say":
                if child.tag not in SSML_ELEMENTS:
                    raise Refusal(12100, f"<{child.tag}> is not SSML allowed in <Say>")
            elif child.tag not in TWIML_ELEMENTS or child.tag == "Response":
                raise Refusal(12100, f"<{child.tag}> is not a TwiML verb")
            elif parent.tag == "Gather" and child.tag not in _GATHER_NESTED:
                raise Refusal(12100, f"<{child.tag}> can't be nested in <Gather>")
    for element in root.iter():
        allowed = _ATTRIBUTES.get(element.tag)
        if allowed is not None and set(element.attrib) - allowed:
            extra = ", ".join(sorted(set(element.attrib) - allowed))
            raise Refusal(12100, f"<{element.tag}> has no attribute {extra}")
        if element.tag == "Say" and not "".join(element.itertext()).strip():
            raise Refusal(12100, "<Say> has nothing to say")
        if element.tag == "Gather":
            _check_gather(element.attrib)
    return root


def _check_gather(attrib: Mapping[str, str]) -> None:
    if "action" in attrib and not _absolute_url(attrib["action"]):
        raise Refusal(12100, "<Gather action> must be an absolute URL")
    if attrib.get("method", "POST") not in ("GET", "POST"):
        raise Refusal(12100, "<Gather method> must be GET or POST")
    for name in ("numDigits", "timeout"):
        if name in attrib and not (attrib[name].isdigit() and int(attrib[name]) >= 1):
            raise Refusal(12100, f"<Gather {name}> must be a positive integer")
    key = attrib.get("finishOnKey", "#")
    if key and key not in _DTMF_KEYS:
        raise Refusal(12100, "<Gather finishOnKey> must be one key or empty")
    if attrib.get("actionOnEmptyResult", "false") not in ("true", "false"):
        raise Refusal(12100, "<Gather actionOnEmptyResult> must be true or false")


# ---------------------------------------------------------------- the peer


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _now() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0))


@dataclass
class Received:
    """One create request as the peer read it, and the resource it answered (None if refused)."""

    operation: str
    form: list[tuple[str, str]]
    authorization: str | None
    resource: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def get(self, name: str) -> str | None:
        values = self.getall(name)
        return values[0] if values else None

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self.form if k == name]


@dataclass
class TwilioPeer:
    """Twilio for one account: `base_url` goes into the provider's config."""

    account_sid: str = field(default_factory=lambda: _sid("AC"))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    numbers: tuple[str, ...] = ("+15005550006",)  # the account's own senders (From)
    messaging_services: tuple[str, ...] = field(default_factory=lambda: (_sid("MG"),))
    received: list[Received] = field(default_factory=list)
    fail_status: int | None = None  # answer every request with this 5xx
    hang: bool = False  # hold every request until the peer closes
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = load_spec()
        self._forms = {op: Draft7Validator(request_schema(op, spec)) for op in _SCHEMAS}
        self._resources = {op: Draft7Validator(response_schema(op, spec)) for op in _SCHEMAS}
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.base_url = ""

    async def __aenter__(self) -> TwilioPeer:
        app = web.Application()
        app.router.add_post(_ROOT + "/{resource}.json", self._create)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._released.set()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def refuse(self, number: str, code: int = 21610, message: str | None = None) -> None:
        """Refuse sends to `number` (E.164 with +) as Twilio does an unsubscribed recipient."""
        self.refused[number] = (code, message or "Attempt to send to unsubscribed recipient")

    def sent(self, operation: str) -> list[Received]:
        return [r for r in self.received if r.operation == operation and r.resource]

    # ------------------------------------------------------------ the REST side

    def _answer(self, record: Received | None, refusal: Refusal) -> web.Response:
        body = twilio_error(refusal.code, refusal.message, refusal.status)
        if record is not None:
            record.error = body
        return web.json_response(body, status=refusal.status)

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )

    async def _create(self, request: web.Request) -> web.Response:
        operation = OPERATIONS.get(request.match_info["resource"])
        if operation is None:
            return self._answer(None, Refusal(20404, "The requested resource was not found", 404))
        authorization = request.headers.get("Authorization")
        if not self._authorized(authorization):
            return self._answer(None, Refusal(20003, "Authenticate", 401))
        if request.match_info["AccountSid"] != self.account_sid:
            return self._answer(None, Refusal(20404, "The requested resource was not found", 404))
        if request.content_type != "application/x-www-form-urlencoded":
            return self._answer(None, Refusal(20001, "The body must be a form", 400))
        raw = (await request.read()).decode("utf-8")
        pairs = parse_qsl(raw, keep_blank_values=True)
        record = Received(operation, pairs, authorization)
        self.received.append(record)
        if self.hang:
            await self._released.wait()
        if self.fail_status is not None:
            refusal = Refusal(20500, "An internal server error has occurred", self.fail_status)
            return self._answer(record, refusal)
        try:
            resource = self._accept(operation, pairs)
        except Refusal as refusal:
            return self._answer(record, refusal)
        record.resource = resource
        return web.json_response(resource, status=201)

    def _accept(self, operation: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        validator = self._forms[operation]
        form = typed_form(pairs, validator.schema)
        faults = sorted(validator.iter_errors(form), key=lambda e: list(e.path))
        if faults:
            fault = faults[0]
            if fault.validator == "required":
                missing = str(fault.message).split("'")[1]
                code, message = _MISSING[operation, missing]
                raise Refusal(code, message)
            where = ".".join(str(p) for p in fault.path) or "form"
            raise Refusal(20001, f"Invalid parameter {where}: {fault.message}")
        if operation == "CreateMessage":
            resource = self._message(form)
        else:
            resource = self._call(form)
        fault_list = list(self._resources[operation].iter_errors(resource))
        assert not fault_list, f"the peer's own resource breaks the spec: {fault_list[0].message}"
        return resource

    def _message(self, form: dict[str, Any]) -> dict[str, Any]:
        to: str = form["To"]
        channel, _, number = to.rpartition(":")
        if channel not in ("", "whatsapp") or not _e164(number):
            raise Refusal(21211, f"Invalid 'To' Phone Number: {to}")
        sender = form.get("From")
        service = form.get("MessagingServiceSid")
        if not sender and not service:
            raise Refusal(21603, "A 'From' phone number is required.")
        if service and service not in self.messaging_services:
            raise Refusal(21701, "The Messaging Service Sid is invalid.", 400)
        if sender:
            from_channel, _, from_number = sender.rpartition(":")
            if from_channel != channel:
                raise Refusal(
                    63007, "Twilio could not find a Channel with the specified From address"
                )
            if from_number not in self.numbers:
                raise Refusal(
                    21606,
                    "The From phone number is not a valid, SMS-capable inbound phone number or short code for your account.",
                )
        if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
            raise Refusal(21602, "Message body is required.")
        if len(form.get("Body", "")) > 1600:
            raise Refusal(21658, "Parameter exceeded character limit")
        if number in self.refused:
            code, message = self.refused[number]
            raise Refusal(code, message)
        sid = _sid("SM")
        return self._resource(
            "CreateMessage",
            sid,
            body=form.get("Body", ""),
            direction="outbound-api",
            **{"from": sender, "to": to},
            messaging_service_sid=service,
            num_media="0",
            num_segments="1",
            status="accepted" if service and not sender else "queued",
            subresource_uris={"media": f"{self._uri('Messages', sid)}/Media.json"},
        )

    def _resource(self, operation: str, sid: str, **values: Any) -> dict[str, Any]:
        """A resource with every field of its spec schema: null unless given."""
        now = _now()
        fields = self._resources[operation].schema["properties"]
        resource: dict[str, Any] = dict.fromkeys(fields)
        resource.update(
            account_sid=self.account_sid,
            api_version="2010-04-01",
            date_created=now,
            date_updated=now,
            price_unit="USD",
            sid=sid,
            uri=self._uri(operation[6:] + "s", sid) + ".json",
            **values,
        )
        return resource

    def _uri(self, resource: str, sid: str) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/{resource}/{sid}"

    def _call(self, form: dict[str, Any]) -> dict[str, Any]:
        to, sender = form["To"], form["From"]
        if not _e164(to):
            raise Refusal(21211, f"Invalid 'To' Phone Number: {to}")
        if sender not in self.numbers:
            message = (
                f"The source phone number provided, {sender}, is not yet verified for your account."
            )
            raise Refusal(21210, message)
        if not (form.get("Twiml") or form.get("Url") or form.get("ApplicationSid")):
            raise Refusal(21205, "Url parameter is required.")
        if "Twiml" in form:
            check_twiml(form["Twiml"])
        events = set(form.get("StatusCallbackEvent", []))
        if events - {"initiated", "ringing", "answered", "completed"}:
            raise Refusal(21626, "Invalid StatusCallbackEvent")
        if to in self.refused:
            code, message = self.refused[to]
            raise Refusal(code, message)
        sid = _sid("CA")
        base = self._uri("Calls", sid)
        return self._resource(
            "CreateCall",
            sid,
            direction="outbound-api",
            **{"from": sender, "to": to},
            from_formatted=sender,
            to_formatted=to,
            phone_number_sid=_sid("PN"),
            queue_time="0",
            status="queued",
            subresource_uris={
                name: f"{base}/{name.capitalize()}.json"
                for name in ("notifications", "recordings", "events")
            },
        )

    # ------------------------------------------------------------ the callback side

    def find(self, sid: str) -> Received:
        for record in self.received:
            if record.resource and record.resource["sid"] == sid:
                return record
        raise KeyError(sid)

    def message_status_params(
        self, sid: str, status: str, error_code: str | None = None
    ) -> list[tuple[str, str]]:
        """A Messages StatusCallback form, as Twilio posts it."""
        resource = self.find(sid).resource or {}
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("From", resource.get("from") or self.numbers[0]),
            ("MessageSid", sid),
            ("MessageStatus", status),
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("To", resource.get("to") or ""),
        ]
        if resource.get("messaging_service_sid"):
            params.append(("MessagingServiceSid", resource["messaging_service_sid"]))
        if error_code is not None:
            params.append(("ErrorCode", error_code))
        return params

    def _call_params(self, sid: str, status: str) -> list[tuple[str, str]]:
        """What Twilio posts about a call in every callback."""
        resource = self.find(sid).resource or {}
        to, caller = resource.get("to") or "", resource.get("from") or ""
        return [
            ("AccountSid", self.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", sid),
            ("CallStatus", status),
            ("Called", to),
            ("Caller", caller),
            ("Direction", "outbound-api"),
            ("From", caller),
            ("To", to),
        ]

    def call_status_params(self, sid: str, status: str) -> list[tuple[str, str]]:
        """A Calls StatusCallback form (call progress events), as Twilio posts it."""
        params = self._call_params(sid, status)
        params += [
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", "0"),
            ("Timestamp", _now()),
        ]
        if status == "completed":
            params += [("CallDuration", "12"), ("Duration", "1")]
        return params

    def signed(
        self, url: str, params: Iterable[tuple[str, str]], auth_token: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """(headers, body) of a form post Twilio signs with the auth token."""
        pairs = list(params)
        validator = RequestValidator(auth_token or self.auth_token)
        return (
            {
                "X-Twilio-Signature": validator.compute_signature(url, MultiDict(pairs)),
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "TwilioProxy/1.1",
            },
            urlencode(pairs).encode(),
        )

    async def post(
        self, url: str, params: Iterable[tuple[str, str]], **sign: Any
    ) -> tuple[int, str]:
        """POST a signed form to `url` (a StatusCallback or a Gather action): (status, body)."""
        headers, body = self.signed(url, params, **sign)
        if self._client is None:
            self._client = aiohttp.ClientSession()
        async with self._client.post(url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def send_status(
        self, sid: str, status: str, error_code: str | None = None
    ) -> tuple[int, str]:
        """Post the status of a message or call the peer took to the StatusCallback it was given."""
        record = self.find(sid)
        url = record.get("StatusCallback")
        assert url, f"{sid} was sent without a StatusCallback"
        if record.operation == "CreateMessage":
            params = self.message_status_params(sid, status, error_code)
        else:
            params = self.call_status_params(sid, status)
        return await self.post(url, params)

    def gather_action(self, sid: str) -> str:
        """The <Gather action> URL of a call the peer took."""
        twiml = self.find(sid).get("Twiml") or ""
        gather = check_twiml(twiml).find("Gather")
        assert gather is not None, "the call's TwiML has no <Gather>"
        return gather.attrib["action"]

    def gather_params(self, sid: str, digits: str) -> list[tuple[str, str]]:
        """What Twilio posts to a <Gather action> once the callee pressed `digits`."""
        params = self._call_params(sid, "in-progress")
        return [*params, ("Digits", digits), ("FinishedOnKey", ""), ("msg", "Gather End")]

    async def press(self, sid: str, digits: str) -> tuple[int, str]:
        """The callee pressed `digits`: Twilio posts them to the Gather action."""
        return await self.post(self.gather_action(sid), self.gather_params(sid, digits))
