"""A local stand-in for Meta's Graph API (WhatsApp Cloud API), strict where Meta is.

`POST /{version}/{phone_number_id}/messages` is checked against Meta's own OpenAPI description
(`shared/reference/providers/whatsapp_cloud_messages_v23.yaml`): the template-message schema
with its $refs resolved, its allOf merged and every object closed (additionalProperties: false),
so a field Meta does not define fails. Then the peer checks what the schema can't: the Bearer
token, the phone number id, that the template is approved in the language asked for, and that
its parameters fit. It answers as Meta does: `{messaging_product, contacts, messages[{id}]}` on
success, `{"error": {message, type, code, error_subcode?, error_data?, fbtrace_id}}` otherwise.

It can also play Meta's webhook side: status and inbound-message deliveries signed with
X-Hub-Signature-256 over the exact bytes it posts.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator

SPEC = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "reference"
    / "providers"
    / "whatsapp_cloud_messages_v23.yaml"
)
VERSION = "v23.0"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"
WABA_ID = "102290129340398"
ACCESS_TOKEN = "EAAJB3testtokenZCZBw0"
APP_SECRET = "5f3c2a9d8e7b6a1c0d4e3f2a1b0c9d8e"

# Meta's error catalogue, as far as the tests need it: code -> (HTTP status, type, message,
# details). 190 is Graph's own token error; the others are WhatsApp's (error_data.details).
ERRORS: dict[int, tuple[int, str, str, str]] = {
    1: (500, "OAuthException", "An unknown error has occurred.", ""),
    100: (400, "OAuthException", "(#100) Invalid parameter", ""),
    190: (401, "OAuthException", "Invalid OAuth access token - Cannot parse access token", ""),
    2500: (400, "OAuthException", "Unknown path components", ""),
    130429: (
        400,
        "OAuthException",
        "(#130429) Rate limit hit",
        "Cloud API message throughput has been reached.",
    ),
    131030: (
        400,
        "OAuthException",
        "(#131030) Recipient phone number not in allowed list",
        "Recipient phone number not in allowed list: Add recipient phone number to recipient "
        "list and try again.",
    ),
    131047: (
        400,
        "OAuthException",
        "(#131047) Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
    132000: (
        400,
        "OAuthException",
        "(#132000) Number of parameters does not match the expected number of params",
        "",
    ),
    132001: (
        404,
        "OAuthException",
        "(#132001) Template name does not exist in the translation",
        "",
    ),
}


# --- the request schema, from Meta's file -------------------------------------------------------


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    """Inline every `#/...` $ref (the part used here has no recursive refs)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            siblings = {k: v for k, v in node.items() if k not in ("$ref", "description")}
            return _resolve({**copy.deepcopy(target), **siblings}, root)
        return {k: _resolve(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    return node


def _merge_all_of(node: Any) -> Any:
    """One object schema for an allOf of object schemas. Meta's TemplateMessage is allOf(base
    properties, template properties); closing either branch alone would reject the other's
    fields, so the branches are merged before closing."""
    if isinstance(node, list):
        return [_merge_all_of(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _merge_all_of(v) for k, v in node.items()}
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for branch in node.pop("allOf"):
            merged["properties"].update(branch.get("properties", {}))
            merged["required"] += [
                r for r in branch.get("required", []) if r not in merged["required"]
            ]
        node = {**merged, **{k: v for k, v in node.items() if k not in merged}}
    return node


def _close(node: Any) -> Any:
    """additionalProperties: false on every object schema that lists properties; and drop the
    OpenAPI-only `discriminator` (Meta's names schemas its file doesn't have)."""
    if isinstance(node, list):
        return [_close(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _close(v) for k, v in node.items() if k != "discriminator"}
    if "properties" in node:
        node["properties"] = {k: _close(v) for k, v in node["properties"].items()}
        node.setdefault("additionalProperties", False)
    return node


# Meta's file leaves a component's `parameters` items open. An authentication template takes
# text parameters only (the code, in the body and on the copy-code button), shaped as Meta's
# template docs give them: {"type": "text", "text": "..."}.
_TEXT_PARAMETER: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}


@functools.cache
def load_spec(spec_path: Path = SPEC) -> dict[str, Any]:
    """Meta's file, parsed once per test run (the slow part); the schema builders below copy
    what they take from it, so it stays as Meta wrote it."""
    spec: dict[str, Any] = yaml.safe_load(spec_path.read_text())
    return spec


@functools.cache
def template_message_schema(spec_path: Path = SPEC) -> dict[str, Any]:
    """Meta's TemplateMessage, resolved, merged and closed, with the file's quirks fixed."""
    spec = load_spec(spec_path)
    schema: dict[str, Any] = _close(
        _merge_all_of(_resolve(spec["components"]["schemas"]["TemplateMessage"], spec))
    )
    # QUIRK: BaseMessageProperties requires recipient_type, but the API defaults it to
    # "individual" and Meta's own examples in this file ("Send Test Message", the flow template)
    # omit it. Optional here; the enum still holds when it is sent.
    schema["required"] = [r for r in schema["required"] if r != "recipient_type"]
    # BaseMessageProperties types `type` as any string; the template branch's enum is the rule
    schema["properties"]["type"] = {"type": "string", "enum": ["template"]}
    # the file only gives "whatsapp" as the example; it is the one value the API takes
    schema["properties"]["messaging_product"]["const"] = "whatsapp"
    template = schema["properties"]["template"]
    # QUIRK: LanguageObject requires `policy`, but "deterministic" is its only value and Meta's
    # examples mostly leave it out; optional here, enum kept.
    language = template["properties"]["language"]
    language["required"] = ["code"]
    component = template["properties"]["components"]["items"]
    # QUIRK: the index pattern ^[2-6, 11-14]$ is a character class (it matches "2".."6", ",",
    # " ", "1", "4") and rejects "0", the index Meta's own docs give every copy-code button. The
    # description says "Position index of the button (0-9)".
    component["properties"]["index"]["pattern"] = "^[0-9]$"
    component["properties"]["parameters"]["items"] = _TEXT_PARAMETER
    # the description: sub_type and index are "Required when type=button"
    component["if"] = {"properties": {"type": {"const": "button"}}}
    component["then"] = {"required": ["sub_type", "index", "parameters"]}
    component["else"] = {"not": {"anyOf": [{"required": ["sub_type"]}, {"required": ["index"]}]}}
    Draft202012Validator.check_schema(schema)
    return schema


@functools.cache
def header_parameters(spec_path: Path = SPEC) -> tuple[tuple[str, bool, dict[str, Any]], ...]:
    """(name, required, schema) of each header parameter the operation declares."""
    spec = load_spec(spec_path)
    operation = _resolve(spec["paths"]["/{Version}/{Phone-Number-ID}/messages"]["post"], spec)
    return tuple(
        (p["name"], bool(p.get("required")), p["schema"])
        for p in operation["parameters"]
        if p["in"] == "header"
    )


def header_problems(headers: Mapping[str, str]) -> list[str]:
    """The request headers against the spec's header parameters (Authorization, Content-Type,
    User-Agent). Content-Type is compared without its parameters (`; charset=...`)."""
    problems = []
    for name, required, schema in header_parameters():
        value = headers.get(name)
        if value is None:
            if required:
                problems.append(f"header {name}: missing")
            continue
        if name == "Content-Type":
            value = value.split(";")[0].strip()
        for error in Draft202012Validator(schema).iter_errors(value):
            problems.append(f"header {name}: {error.message}")
    return problems


# --- the peer ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """An approved template: its languages, body parameter count, and whether it has the
    copy-code (url) button at index 0."""

    languages: frozenset[str]
    body_params: int = 1
    copy_code: bool = True


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: Mapping[str, str]
    body: Any
    answer_status: int


def wamid() -> str:
    return "wamid." + base64.b64encode(os.urandom(30)).decode()


def graph_error(
    code: int, *, subcode: int | None = None, details: str | None = None
) -> dict[str, Any]:
    """Meta's error body for `code` (ERRORS), with a fresh fbtrace_id."""
    _status, kind, message, default_details = ERRORS[code]
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details or default_details:
        error["error_data"] = {
            "messaging_product": "whatsapp",
            "details": details or default_details,
        }
    error["fbtrace_id"] = base64.b64encode(os.urandom(8)).decode().rstrip("=")
    return {"error": error}


@dataclass
class WhatsAppPeer:
    """The Graph API on 127.0.0.1. Set `mode` to "ok", "fail" (500 with Graph's code 1 body),
    "garbage" (200, not JSON), "hang" (never answers), or `error_code` to any ERRORS code for
    the next answers; `refused` numbers get 131030. Every request lands in `requests`,
    every schema problem in `problems`."""

    access_token: str = ACCESS_TOKEN
    phone_number_id: str = PHONE_NUMBER_ID
    app_secret: str = APP_SECRET
    templates: dict[str, Template] = field(
        default_factory=lambda: {
            "verify_code": Template(frozenset({"en_US", "en_GB", "de", "fr", "pt_BR", "es_MX"})),
            "verify_code_plain": Template(frozenset({"en_US"}), copy_code=False),
        }
    )
    refused: set[str] = field(default_factory=set)
    mode: str = "ok"
    error_code: int | None = None
    requests: list[Recorded] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # wamid -> request body

    def __post_init__(self) -> None:
        self._validator = Draft202012Validator(template_message_schema())
        # the peer's own success answers are held to Meta's response schema, closed too
        spec = load_spec()
        answer_schema = _close(
            _resolve(spec["components"]["schemas"]["MessageResponsePayload"], spec)
        )
        self._answer_validator = Draft202012Validator(answer_schema)
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self.url = ""

    async def __aenter__(self) -> WhatsAppPeer:
        app = web.Application()
        app.router.add_post("/{version}/{phone_number_id}/messages", self._messages)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()  # let hung handlers finish, so cleanup does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the Graph API side ---

    def _answer(self, request: web.Request, body: Any, status: int, payload: Any) -> web.Response:
        self.requests.append(Recorded(request.path, dict(request.headers), body, status))
        return web.json_response(payload, status=status, headers={"facebook-api-version": VERSION})

    def _error(self, request: web.Request, body: Any, code: int, **kw: Any) -> web.Response:
        return self._answer(request, body, ERRORS[code][0], graph_error(code, **kw))

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        auth = request.headers.get("Authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.access_token}".encode()):
            return self._error(request, body, 190)
        if request.match_info["version"] != VERSION:
            return self._error(request, body, 2500)
        if request.match_info["phone_number_id"] != self.phone_number_id:
            pid = request.match_info["phone_number_id"]
            return self._error(
                request,
                body,
                100,
                subcode=33,
                details=f"Unsupported post request. Object with ID '{pid}' does not exist",
            )
        if self.mode == "hang":
            self.requests.append(Recorded(request.path, dict(request.headers), body, 0))
            await self._release.wait()
            return web.Response(status=504)
        if self.mode == "fail":
            return self._error(request, body, 1)
        if self.mode == "garbage":
            self.requests.append(Recorded(request.path, dict(request.headers), body, 200))
            return web.Response(text="<html>upstream</html>", content_type="text/html")
        if request.content_type != "application/json" or isinstance(body, bytes):
            return self._error(request, body, 100, details="the body is not JSON")
        problems = header_problems(request.headers) + [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in self._validator.iter_errors(body)
        ]
        if problems:
            self.problems.extend(problems)
            return self._error(request, body, 100, details="; ".join(problems))
        if self.error_code is not None:
            return self._error(request, body, self.error_code)
        fault = self._template_fault(body["template"])
        if fault is not None:
            return self._error(request, body, fault)
        to = body["to"]
        if to.lstrip("+") in self.refused:
            return self._error(request, body, 131030)
        message_id = wamid()
        self.sent[message_id] = body
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
            "messages": [{"id": message_id, "message_status": "accepted"}],
        }
        self._answer_validator.validate(answer)
        return self._answer(request, body, 200, answer)

    def _template_fault(self, template: Mapping[str, Any]) -> int | None:
        """132001 for a template not approved in the language asked for; 132000 when the
        components don't give exactly its parameters (one body text, the copy-code text)."""
        approved = self.templates.get(template["name"])
        if approved is None or template["language"]["code"] not in approved.languages:
            return 132001
        components = template.get("components", [])
        bodies = [c for c in components if c["type"] == "body"]
        buttons = [c for c in components if c["type"] == "button"]
        if [len(c.get("parameters", [])) for c in bodies] != [approved.body_params]:
            return 132000
        if approved.copy_code:
            fits = (
                len(buttons) == 1
                and buttons[0]["sub_type"] == "url"
                and buttons[0]["index"] == "0"
                and len(buttons[0]["parameters"]) == 1
            )
            if not fits:
                return 132000
        elif buttons:
            return 132000
        if any(c["type"] == "header" for c in components):
            return 132000
        return None

    # --- the webhook side ---

    def _envelope(self, value: dict[str, Any], field_name: str = "messages") -> dict[str, Any]:
        value = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": DISPLAY_NUMBER,
                "phone_number_id": self.phone_number_id,
            },
            **value,
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": field_name}]}],
        }

    def status_payload(
        self,
        message_id: str,
        status: str,
        *,
        recipient: str = "447700900123",
        errors: Iterable[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """A status webhook as Meta sends it for an authentication template message."""
        now = int(time.time())
        entry: dict[str, Any] = {
            "id": message_id,
            "status": status,
            "timestamp": str(now),
            "recipient_id": recipient,
        }
        if status != "failed":
            entry["conversation"] = {
                # a conversation id is 32 hex digits; derived so each message keeps its own
                "id": hashlib.sha256(message_id.encode()).hexdigest()[:32],
                "expiration_timestamp": str(now + 86400),
                "origin": {"type": "authentication"},
            }
            entry["pricing"] = {
                "billable": True,
                "pricing_model": "PMP",
                "category": "authentication",
                "type": "regular",
            }
        errors = list(errors)
        if errors:
            entry["errors"] = [dict(e) for e in errors]
        return self._envelope({"statuses": [entry]})

    def inbound_payload(self, sender: str, text: str) -> dict[str, Any]:
        """An inbound text message webhook (a user writing to the business number)."""
        message = {
            "from": sender,
            "id": wamid(),
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": text},
        }
        contacts = [{"profile": {"name": "Test User"}, "wa_id": sender}]
        return self._envelope({"contacts": contacts, "messages": [message]})

    def sign(self, body: bytes) -> dict[str, str]:
        """The headers Meta sends with a webhook body: both signatures (SHA-1, the legacy one,
        and SHA-256) keyed by the app secret over these exact bytes."""
        key = self.app_secret.encode()
        return {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
            "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        }

    async def post_webhook(
        self,
        url: str,
        payload: Mapping[str, Any],
        *,
        sign: bool = True,
        tamper: bool = False,
    ) -> tuple[int, str]:
        """POST `payload` to `url` as Meta does; `tamper` changes the body after signing."""
        # Meta escapes non-ASCII as \\uXXXX and signs that text; so does this
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = self.sign(body)
        if not sign:
            del headers["X-Hub-Signature"], headers["X-Hub-Signature-256"]
        if tamper:
            body = body.replace(b'"status":"', b'"status":"x', 1)
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status, await response.text()
