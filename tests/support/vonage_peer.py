"""A local stand-in for Vonage's SMS, Messages and Voice APIs, strict where Vonage is.

- `POST /sms/json` (SMS API): api_key/api_secret checked, the form against `NewMessage` of
  `vonage_sms.yml` (closed: an invented field fails); answers 200 with `messages[]`, whose
  `status` is "0" or an SMS API error code (2 missing, 3 invalid, 4 credentials, 29 whitelist).
- `POST /v1/messages`, `POST /v1/calls`: the Bearer JWT checked (RS256, the application's
  public key and `application_id`), the body against the current SDK models
  (`vonage_messages.models`, `vonage_voice.models`; keys they lack refused) and the YAML where
  it still holds (the 2021 Messages spec is v0.1: a v1 body is translated to its shape; the
  Voice create-call schema closed); answers 202 {message_uuid} / 201 {uuid, status, direction,
  conversation_uuid}, or RFC 7807 problems (401; 422 Messages, 400 Voice).

`mode` "fail" answers 500, "hang" never answers; `refused` numbers are not whitelisted. Every
request is recorded. It also plays Vonage's callbacks: DLRs signed with `sig`, Messages/Voice
webhooks with the HS256 Bearer JWT, sent where the provider asked.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import json
import secrets
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError
from vonage_http_client.auth import Auth
from vonage_messages import models as messages_models
from vonage_voice.models import ncco as ncco_models
from vonage_voice.models.requests import CreateCallRequest

SPECS = Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "providers"
PROBLEM = "application/problem+json"
# what Vonage's SDK puts in an application token (vonage_jwt.JwtClient)
_CLAIMS = {"require": ["iat", "exp", "jti", "application_id"]}

# --- the YAML, resolved and closed ----------------------------------------------------------


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(copy.deepcopy(target), root)
        return {k: _resolve(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    return node


def _closed(node: Any) -> Any:
    """allOf merged into one object (closing its branches apart would reject each other's
    fields), then every object with properties closed: a field the spec lacks fails."""
    if isinstance(node, list):
        return [_closed(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _closed(v) for k, v in node.items()}
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in node.pop("allOf"):
            part = _closed(part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += [
                r for r in part.get("required", []) if r not in merged["required"]
            ]
        node = {**node, **merged}
    if "properties" in node:
        node.setdefault("additionalProperties", False)
    return node


@functools.cache
def _spec(name: str) -> dict[str, Any]:
    with (SPECS / name).open() as f:
        raw = yaml.safe_load(f)
    return {"raw": raw, "schemas": _resolve(raw["components"]["schemas"], raw)}


def schema(file: str, name: str, *, closed: bool = True) -> dict[str, Any]:
    found = _spec(file)["schemas"][name]
    return _closed(found) if closed else found


def _errors(instance: Any, file: str, name: str, *, closed: bool = True) -> list[str]:
    validator = Draft202012Validator(schema(file, name, closed=closed))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


# --- SDK models, closed ---------------------------------------------------------------------


def _unknown_keys(sent: Any, known: Any, path: str = "") -> list[str]:
    """Keys of `sent` the validated model did not keep (pydantic drops what it doesn't define)."""
    if isinstance(sent, dict) and isinstance(known, dict):
        found = []
        for key, value in sent.items():
            if key not in known:
                found.append(f"{path}{key}")
            else:
                found += _unknown_keys(value, known[key], f"{path}{key}.")
        return found
    if isinstance(sent, list) and isinstance(known, list):
        return [u for s, k in zip(sent, known, strict=False) for u in _unknown_keys(s, k, path)]
    return []


# the SDK models name these fields differently from the wire (serialization aliases only, so
# they validate by the Python name)
_WIRE_NAMES = {"from": "from_", "dtmfAnswer": "dtmf_answer"}


def _python_names(node: Any) -> Any:
    if isinstance(node, dict):
        return {_WIRE_NAMES.get(k, k): _python_names(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_python_names(v) for v in node]
    return node


def sdk_check(model: type[BaseModel], body: dict[str, Any]) -> list[str]:
    """`body` against an SDK model: its validation errors, then any key it does not define."""
    try:
        parsed = model.model_validate(_python_names(body))
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    except Exception as exc:  # the SDK's own checks raise VoiceError, NccoActionError
        return [f"{model.__name__}: {exc}"]
    kept = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return [f"{k}: not a field of {model.__name__}" for k in _unknown_keys(body, kept)]


_MESSAGE_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("sms", "text"): messages_models.Sms,
    ("whatsapp", "text"): messages_models.WhatsappText,
    ("whatsapp", "template"): messages_models.WhatsappTemplate,
    ("whatsapp", "custom"): messages_models.WhatsappCustom,
}
# each action by its name ("talk", "input", …): the SDK's own union would let a talk pass as
# a record (every model accepts any action name), so actions are checked one model each
_NCCO_MODELS: dict[str, type[BaseModel]] = {
    m.model_fields["action"].default.value: m
    for m in (ncco_models.Talk, ncco_models.Input, ncco_models.Stream, ncco_models.Record,
              ncco_models.Connect, ncco_models.Conversation, ncco_models.Notify)
}  # fmt: skip


def _as_v0_1(body: dict[str, Any]) -> dict[str, Any] | None:
    """A v1 Messages body in the 2021 spec's (v0.1) shape, for the parts both define."""
    kind = (body.get("channel"), body.get("message_type"))
    content: dict[str, Any]
    message: dict[str, Any] = {}
    if kind in (("sms", "text"), ("whatsapp", "text")):
        content = {"type": "text", "text": body.get("text")}
    elif kind == ("whatsapp", "template"):
        content = {"type": "template", "template": body.get("template")}
        message["whatsapp"] = body.get("whatsapp", {"locale": "en-US"})
    else:
        return None  # custom, media, …: v0.1 has no counterpart
    return {
        "to": {"type": body["channel"], "number": body.get("to")},
        "from": {"type": body["channel"], "number": body.get("from")},
        "message": {"content": content, **message},
        **({"client_ref": body["client_ref"]} if "client_ref" in body else {}),
    }


def _custom_template_errors(custom: Any) -> list[str]:
    """WhatsApp's own template object, as the `custom` type passes it on (Meta's OpenAPI)."""
    if not isinstance(custom, dict) or custom.get("type") != "template":
        return ["custom: only WhatsApp template objects are simulated"]
    template = schema("whatsapp_cloud_messages_v23.yaml", "TemplateObject")
    # Meta's button `index` pattern ("^[2-6, 11-14]$") is a mangled character class that
    # refuses the "0" its own examples send; the index is checked by hand instead
    template["properties"]["components"]["items"]["properties"]["index"].pop("pattern")
    props = {"type": {"enum": ["template"]}, "template": template}
    closed = {"required": ["type", "template"], "properties": props, "additionalProperties": False}
    errors = [e.message for e in Draft202012Validator(closed).iter_errors(custom)]
    for component in custom.get("template", {}).get("components", []):
        if component.get("type") == "button" and not str(component.get("index", "")).isdigit():
            errors.append("custom.template.components: a button needs its index (0-9)")
    return errors


# --- the peer -------------------------------------------------------------------------------


@dataclass
class Recorded:
    api: str  # "sms" | "messages" | "voice"
    headers: dict[str, str]
    body: Any  # the form (dict) or the JSON


@dataclass
class Sent:
    """What the peer accepted, and where Vonage would call back about it."""

    api: str
    id: str
    to: str
    callback: str | None
    body: Any = field(repr=False, default=None)


def sign_sms_params(params: dict[str, str], secret: str, method: str) -> str:
    """`sig` for an SMS API callback. The HMAC methods are signed by Vonage's own SDK
    (vonage_http_client.auth.Auth.sign_params); "md5hash", the dashboard's default, is not in
    the current SDK, so it is written here from Vonage's signing guide (MD5 of the sorted
    `&k=v` string with the secret appended)."""
    if method == "md5hash":
        signed = "".join(
            f"&{k}={v.replace('&', '_').replace('=', '_')}" for k, v in sorted(params.items())
        )
        return hashlib.md5((signed + secret).encode(), usedforsecurity=False).hexdigest()
    auth = Auth(api_key="abcd1234", signature_secret=secret, signature_method=method)  # type: ignore[arg-type]
    return auth.sign_params(dict(params)).upper()  # Vonage sends HMACs upper case


def signed_webhook_jwt(body: bytes, secret: str, *, api_key: str, application_id: str) -> str:
    """The Bearer token of a signed Messages/Voice webhook: HS256 with the signature secret,
    `payload_hash` = SHA-256 hex of the body. Vonage's packages only verify these
    (vonage_jwt.verify_signature) and sign RS256 application tokens, so PyJWT signs here."""
    claims = {
        "iat": int(time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": api_key,
        "application_id": application_id,
    }
    with warnings.catch_warnings():
        # Vonage picks the secret's length; PyJWT warns below 32 bytes
        warnings.filterwarnings("ignore", message="The HMAC key is", category=UserWarning)
        return jwt.encode(claims, secret, algorithm="HS256")


class VonagePeer:
    """The three APIs on one local port; `url` is what base_url points at."""

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        application_id: str,
        public_key_pem: str,
        signature_secret: str,
        signature_method: str = "md5hash",
    ) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.application_id, self.public_key_pem = application_id, public_key_pem
        self.signature_secret, self.signature_method = signature_secret, signature_method
        self.mode = "ok"  # "ok" | "fail" (500) | "hang"
        self.refused: set[str] = set()
        self.requests: list[Recorded] = []
        self.sent: list[Sent] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    async def start(self) -> VonagePeer:
        app = web.Application()
        app.router.add_post("/sms/json", self._sms)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/calls", self._calls)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _misbehave(self) -> web.Response | None:
        if self.mode == "hang":
            try:
                await asyncio.wait_for(self._closing.wait(), timeout=60)
            except TimeoutError:
                pass
            return web.Response(status=504)
        if self.mode == "fail":
            return web.Response(status=500, text="Internal Server Error")
        return None

    # -- SMS API --

    @staticmethod
    def _sms_answer(*messages: dict[str, str]) -> web.Response:
        body = {"message-count": str(len(messages)), "messages": list(messages)}
        ok = all(m.get("status") == "0" for m in messages)
        assert not _errors(body, "vonage_sms.yml", "SMS" if ok else "Error"), body
        return web.json_response(body)

    def _sms_error(self, status: str, text: str) -> web.Response:
        return self._sms_answer({"status": status, "error-text": text})

    async def _sms(self, request: web.Request) -> web.Response:
        form = dict((await request.post()).items())
        self.requests.append(Recorded("sms", dict(request.headers), form))
        if (failed := await self._misbehave()) is not None:
            return failed
        for key in ("api_key", "api_secret"):
            if not form.get(key):
                return self._sms_error("2", f"Missing {key}")
        if form["api_key"] != self.api_key or form["api_secret"] != self.api_secret:
            return self._sms_error("4", "Bad Credentials")
        for key in ("from", "to", "text"):
            if not form.get(key):
                return self._sms_error("2", f"Missing {key} param")
        # a form carries text only: integers and booleans as the schema types them
        props = schema("vonage_sms.yml", "NewMessage")["properties"]
        kinds = {k: props.get(k, {}).get("type") for k in form}
        typed = {
            k: int(v) if kinds[k] == "integer" and str(v).isdigit()
            else v == "true" if kinds[k] == "boolean" and v in ("true", "false")
            else v
            for k, v in form.items()
        }  # fmt: skip
        problems = _errors(typed, "vonage_sms.yml", "NewMessage")
        if problems:
            return self._sms_error("3", "Invalid params: " + "; ".join(problems))
        if len(str(form.get("client-ref", ""))) > 40:
            return self._sms_error("3", "client-ref is longer than 40 characters")
        if form["to"] in self.refused:
            return self._sms_error("29", "Non White-listed Destination - rejected")
        message_id = secrets.token_hex(8).upper()
        self.sent.append(Sent("sms", message_id, str(form["to"]), str(form.get("callback")), form))
        return self._sms_answer(
            {
                "to": str(form["to"]),
                "message-id": message_id,
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "23410",
                **({"client-ref": str(form["client-ref"])} if "client-ref" in form else {}),
            }
        )

    # -- Messages and Voice APIs --

    @staticmethod
    def _problem(status: int, kind: str, title: str, detail: str, **more: Any) -> web.Response:
        body = {
            "type": f"https://developer.vonage.com/api-errors/{kind}",
            "title": title,
            "detail": detail,
            "instance": str(uuid.uuid4()),
            **more,
        }
        # the 2021 Messages spec's Error schema: type, title, detail, instance (v1 adds more)
        assert not _errors(body, "vonage_messages-olympus.yml", "Error", closed=False), body
        return web.json_response(body, status=status, content_type=PROBLEM)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer":
            return False
        try:
            claims = jwt.decode(token, self.public_key_pem, algorithms=["RS256"], options=_CLAIMS)
        except jwt.PyJWTError:
            return False
        return bool(claims["application_id"] == self.application_id)

    async def _json_request(self, api: str, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.requests.append(Recorded(api, dict(request.headers), body))
        return body

    def _unauthorized(self) -> web.Response:
        detail = "You did not provide correct credentials."
        return self._problem(401, "#unauthorized", "Unauthorized", detail)

    def _invalid(self, status: int, kind: str, problems: list[str]) -> web.Response:
        params = [
            {"name": p.split(":", 1)[0], "reason": p.split(":", 1)[-1].strip()} for p in problems
        ]
        return self._problem(
            status,
            kind,
            "Invalid params" if status == 422 else "Bad Request",
            "The value of one or more parameters is invalid.",
            invalid_parameters=params,
        )

    async def _messages(self, request: web.Request) -> web.Response:
        body = await self._json_request("messages", request)
        if (failed := await self._misbehave()) is not None:
            return failed
        if not self._authorized(request):
            return self._unauthorized()
        if not isinstance(body, dict):
            return self._invalid(422, "messages#1150", ["body: not a JSON object"])
        model = _MESSAGE_MODELS.get((body.get("channel"), body.get("message_type")))
        if model is None:
            return self._invalid(422, "messages#1150", ["message_type: not simulated here"])
        problems = sdk_check(model, body)
        v0_1 = _as_v0_1(body)
        if v0_1 is not None and not problems:
            problems = _errors(v0_1, "vonage_messages-olympus.yml", "message")
        if body.get("message_type") == "custom" and not problems:
            problems = _custom_template_errors(body.get("custom"))
        if problems:
            return self._invalid(422, "messages#1150", problems)
        if body["to"] in self.refused:
            return self._problem(
                422, "messages#1160", "Non White-listed Destination",
                "The phone number you set in to is not in your pre-approved destination list.",
            )  # fmt: skip
        message_uuid = str(uuid.uuid4())
        self.sent.append(Sent("messages", message_uuid, body["to"], body.get("webhook_url"), body))
        answer = {"message_uuid": message_uuid}
        assert not _errors(answer, "vonage_messages-olympus.yml", "Response"), answer
        return web.json_response(answer, status=202)

    def _call_problems(self, body: dict[str, Any]) -> list[str]:
        problems = sdk_check(
            CreateCallRequest, {k: v for k, v in body.items() if k != "ncco"} | {"ncco": []}
        )
        problems = [p for p in problems if not p.startswith("ncco")]
        ncco = body.get("ncco")
        if not isinstance(ncco, list) or not ncco:
            return [*problems, "ncco: must be a non-empty list of actions"]
        for i, action in enumerate(ncco):
            model = _NCCO_MODELS.get(action.get("action")) if isinstance(action, dict) else None
            if model is None:
                problems.append(f"ncco.{i}: unknown action")
                continue
            problems += [f"ncco.{i}.{p}" for p in sdk_check(model, action)]
            language = action.get("language")
            languages = schema("vonage_voice.yml", "language")["enum"]
            if language is not None and language not in languages:
                problems.append(f"ncco.{i}.language: not a Voice API language")
        problems += _errors(body, "vonage_voice.yml", "CreateCallRequestNcco")
        return problems

    async def _calls(self, request: web.Request) -> web.Response:
        body = await self._json_request("voice", request)
        if (failed := await self._misbehave()) is not None:
            return failed
        if not self._authorized(request):
            return self._unauthorized()
        if not isinstance(body, dict):
            return self._invalid(400, "voice#validation", ["body: not a JSON object"])
        problems = self._call_problems(body)
        if problems:
            return self._invalid(400, "voice#validation", problems)
        to = body["to"][0]["number"]
        if to in self.refused:
            return self._problem(
                403, "voice#forbidden", "Forbidden",
                "This account can only call the numbers it has verified.",
            )  # fmt: skip
        call_uuid = str(uuid.uuid4())
        events = body.get("event_url", [None])[0]
        self.sent.append(Sent("voice", call_uuid, to, events, body))
        answer = {
            "uuid": call_uuid,
            "status": "started",
            "direction": "outbound",
            "conversation_uuid": f"CON-{uuid.uuid4()}",
        }
        assert not _errors(answer, "vonage_voice.yml", "CreateCallResponse"), answer
        return web.json_response(answer, status=201)

    # -- the callback side --

    def dlr_params(self, sent: Sent, status: str, err_code: str = "0") -> dict[str, str]:
        """A signed SMS API delivery receipt about `sent` (the YAML's DeliveryReceipt)."""
        params = {
            "msisdn": sent.to,
            "to": str(sent.body.get("from", "")),
            "network-code": "23410",
            "messageId": sent.id,
            "price": "0.03330000",
            "status": status,
            "scts": time.strftime("%y%m%d%H%M", time.gmtime()),
            "err-code": err_code,
            "api-key": self.api_key,
            "message-timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "timestamp": str(int(time.time())),
            "nonce": str(uuid.uuid4()),
        }
        if "client-ref" in sent.body:
            params["client-ref"] = str(sent.body["client-ref"])
        params["sig"] = sign_sms_params(params, self.signature_secret, self.signature_method)
        assert not _errors(params, "vonage_sms.yml", "DeliveryReceipt"), params
        return params

    def message_status(self, sent: Sent, status: str, error: str | None = None) -> dict[str, Any]:
        """A Messages API v1 status webhook about `sent`."""
        body: dict[str, Any] = {
            "message_uuid": sent.id,
            "to": sent.to,
            "from": str(sent.body.get("from")),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "status": status,
            "channel": sent.body.get("channel"),
        }
        if "client_ref" in sent.body:
            body["client_ref"] = sent.body["client_ref"]
        if error is not None:
            body["error"] = {
                "type": f"https://developer.vonage.com/api-errors/messages#{error}",
                "title": error,
                "detail": "Not part of the provider network",
                "instance": str(uuid.uuid4()),
            }
        return body

    @staticmethod
    def _call(sent: Sent, **fields: Any) -> dict[str, Any]:
        return {
            "uuid": sent.id,
            "conversation_uuid": f"CON-{uuid.uuid4()}",
            "from": str(sent.body["from"]["number"]),
            "to": sent.to,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            **fields,
        }

    def call_event(self, sent: Sent, status: str) -> dict[str, Any]:
        """A Voice API event webhook (call state) about `sent`."""
        return self._call(sent, status=status, direction="outbound")

    def input_event(self, sent: Sent, digits: str) -> dict[str, Any]:
        """What the Voice API posts to the input action's eventUrl when the callee pressed."""
        dtmf = {"digits": digits, "timed_out": not digits}
        return self._call(sent, speech={"results": []}, dtmf=dtmf)

    async def post_json(
        self, url: str, body: dict[str, Any], *, sign: bool = True
    ) -> tuple[int, str]:
        """Deliver a JSON webhook as Vonage does, signed unless told; (status, text) of the
        answer."""
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            token = signed_webhook_jwt(
                raw, self.signature_secret, api_key=self.api_key, application_id=self.application_id
            )
            headers["Authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession() as http, http.post(url, data=raw, headers=headers) as r:
            return r.status, await r.text()

    async def send_dlr(
        self,
        sent: Sent,
        status: str,
        err_code: str = "0",
        *,
        how: str = "GET",
        tamper: bool = False,
    ) -> tuple[int, str]:
        """Deliver a DLR to the SMS's callback: GET query, POST form or POST-JSON, as the
        dashboard's "HTTP method" setting chooses; `tamper` changes a value after signing."""
        assert sent.callback
        params = self.dlr_params(sent, status, err_code)
        if tamper:
            params["status"] = "failed" if status != "failed" else "delivered"
        async with aiohttp.ClientSession() as http:
            if how == "GET":
                call = http.get(f"{sent.callback}?{urlencode(params)}")
            elif how == "POST":
                call = http.post(sent.callback, data=params)
            else:
                call = http.post(sent.callback, json=params)
            async with call as r:
                return r.status, await r.text()
