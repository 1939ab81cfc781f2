"""GET /openapi.json: both dialects' APIs, their schemas generated from the pydantic models.

The Vonage Verify v2 paths (`/v2/verify...`, JSON bodies, RFC 7807 problems, JWT or Basic) and
the Twilio Verify v2 ones (`/v2/Services...`: Services, Verifications, VerificationCheck;
form-encoded PascalCase bodies, Twilio's legacy error body, Basic account credentials).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from orchestrator import __version__
from orchestrator.dialects.twilio import schema as ts
from orchestrator.dialects.vonage import schema as vs
from orchestrator.templates import schema as templates_schema

__all__ = ["document", "handler"]

_MODELS: list[type[BaseModel]] = [
    vs.VerifyRequest,
    vs.StartResponse,
    vs.CheckRequest,
    vs.CheckResponse,
    vs.SilentAuthResponse,
    vs.Problem,
    ts.TwilioError,
    ts.Service,
    ts.ServicePage,
    ts.Verification,
    ts.VerificationCheck,
]
# form-encoded request bodies: optional fields are omitted, never null
_FORMS: list[type[BaseModel]] = [
    ts.ServiceCreateForm,
    ts.ServiceUpdateForm,
    ts.VerificationCreateForm,
    ts.VerificationUpdateForm,
    ts.VerificationCheckForm,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(model)}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref(vs.Problem)}},
    }


_RID = {
    "name": "request_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_AUTH_ERRORS = {
    "401": _problem("Missing or refused credentials"),
    "404": _problem("Unknown or finished request"),
    "429": _problem("Too many failed Basic authentications: locked out for a while"),
}


# ---- Twilio ----------------------------------------------------------------------------------


def _form(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": _ref(model)}},
    }


def _tw_error(description: str) -> dict[str, Any]:
    return {"description": description, **_json(ts.TwilioError)}


def _tw_errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: "Invalid parameter (code 60200 names it)",
        401: "Missing or refused credentials (20003)",
        403: "Delivery blocked: fraud guard, geo permissions or a landline (604xx/606xx)",
        404: "No such resource on this account (20404)",
        409: "Conflict with the verification's state (20409)",
        413: "Body too large (20413)",
        429: "Throttled: send/check attempt limits, rate limits, auth lockout (60202/60203/20429)",
    }
    return {str(s): _tw_error(described[s]) for s in statuses}


def _sid_param(name: str, prefix: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64}
    if prefix is not None:
        schema = {"type": "string", "pattern": f"^{prefix}[0-9a-fA-F]{{32}}$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


_TW_BASIC: list[dict[str, list[str]]] = [{"basicAuth": []}]
_SERVICE_SID = _sid_param("ServiceSid", "VA")
_PAGE = [
    {
        "name": "PageSize",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    {"name": "Page", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**6}},
]


def _twilio_paths() -> dict[str, Any]:
    def op(operation_id: str, summary: str, **rest: Any) -> dict[str, Any]:
        return {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["Twilio Verify v2"],
            "security": _TW_BASIC,
            **rest,
        }

    verification = {"description": "The verification", **_json(ts.Verification)}
    return {
        "/v2/Services": {
            "get": op(
                "ListService",
                "List the account's services",
                parameters=_PAGE,
                responses={
                    "200": {"description": "A page of services", **_json(ts.ServicePage)},
                    **_tw_errors(400, 401, 429),
                },
            ),
            "post": op(
                "CreateService",
                "Create a verification service",
                requestBody=_form(ts.ServiceCreateForm),
                responses={
                    "201": {"description": "Created", **_json(ts.Service)},
                    **_tw_errors(400, 401, 413, 429),
                },
            ),
        },
        "/v2/Services/{ServiceSid}": {
            "parameters": [_SERVICE_SID],
            "get": op(
                "FetchService",
                "Fetch a service",
                responses={
                    "200": {"description": "The service", **_json(ts.Service)},
                    **_tw_errors(401, 404, 429),
                },
            ),
            "post": op(
                "UpdateService",
                "Update a service",
                requestBody={**_form(ts.ServiceUpdateForm), "required": False},
                responses={
                    "200": {"description": "The updated service", **_json(ts.Service)},
                    **_tw_errors(400, 401, 404, 413, 429),
                },
            ),
            "delete": op(
                "DeleteService",
                "Delete a service",
                responses={"204": {"description": "Deleted"}, **_tw_errors(401, 404, 429)},
            ),
        },
        "/v2/Services/{ServiceSid}/Verifications": {
            "parameters": [_SERVICE_SID],
            "post": op(
                "CreateVerification",
                "Start a verification (or resend to a pending destination)",
                requestBody=_form(ts.VerificationCreateForm),
                responses={
                    "201": {"description": "Started", **_json(ts.Verification)},
                    **_tw_errors(400, 401, 403, 404, 409, 413, 429),
                },
            ),
        },
        "/v2/Services/{ServiceSid}/Verifications/{Sid}": {
            "parameters": [_SERVICE_SID, _sid_param("Sid", None)],
            "get": op(
                "FetchVerification",
                "Fetch a pending verification by its VE sid or its To",
                responses={"200": verification, **_tw_errors(401, 404, 429)},
            ),
            "post": op(
                "UpdateVerification",
                "Cancel or approve a pending verification",
                requestBody=_form(ts.VerificationUpdateForm),
                responses={"200": verification, **_tw_errors(400, 401, 404, 409, 413, 429)},
            ),
        },
        "/v2/Services/{ServiceSid}/VerificationCheck": {
            "parameters": [_SERVICE_SID],
            "post": op(
                "CreateVerificationCheck",
                "Check a code (a wrong one answers 200 with status pending)",
                requestBody=_form(ts.VerificationCheckForm),
                responses={
                    "200": {"description": "The outcome", **_json(ts.VerificationCheck)},
                    **_tw_errors(400, 401, 404, 409, 413, 429),
                },
            ),
        },
    }


def _not_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """A form model's schema with `T | None` fields as plain `T`: a form field is left out, never
    sent as null (pydantic spells the optional fields `anyOf: [T, {type: null}]`)."""
    props: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if not (k == "default" and v is None)}
        variants = prop.get("anyOf")
        if isinstance(variants, list):
            kept = [v for v in variants if v != {"type": "null"}]
            if len(kept) == 1:
                prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **kept[0]}
        props[name] = prop
    return {**schema, "properties": props}


@cache
def document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation") for m in [*_MODELS, *_FORMS, *templates_schema.OPENAPI_MODELS]],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = defs.get("$defs", {})
    for form in _FORMS:
        schemas[form.__name__] = _not_nullable(schemas[form.__name__])
    paths: dict[str, Any] = {
        "/v2/verify": {
            "post": {
                "operationId": "newRequest",
                "summary": "Start a verification workflow",
                "requestBody": {"required": True, **_json(vs.VerifyRequest)},
                "responses": {
                    "202": {"description": "Started", **_json(vs.StartResponse)},
                    "400": _problem("Malformed JSON"),
                    "401": _problem("Missing or refused credentials"),
                    "403": _problem("Blocked by the fraud guard or geo permissions"),
                    "409": _problem("A verification to the same destination is in progress"),
                    "412": _problem("Silent auth cannot reach the number's network"),
                    "413": _problem("Body too large"),
                    "422": _problem("Invalid parameters"),
                    "429": _problem("Throttled: send limits or a Basic-auth lockout"),
                },
            }
        },
        "/v2/verify/{request_id}": {
            "parameters": [_RID],
            "post": {
                "operationId": "checkCode",
                "summary": "Check a code",
                "requestBody": {"required": True, **_json(vs.CheckRequest)},
                "responses": {
                    "200": {"description": "Verified", **_json(vs.CheckResponse)},
                    "400": _problem("Wrong code"),
                    **_AUTH_ERRORS,
                    "409": _problem("The current step has no code"),
                    "410": _problem("Too many wrong codes; the request failed"),
                    "413": _problem("Body too large"),
                    "422": _problem("Invalid parameters"),
                },
            },
            "delete": {
                "operationId": "cancelRequest",
                "summary": "Cancel a pending verification",
                "responses": {"204": {"description": "Cancelled"}, **_AUTH_ERRORS},
            },
        },
        "/v2/verify/{request_id}/next_workflow": {
            "parameters": [_RID],
            "post": {
                "operationId": "nextWorkflow",
                "summary": "Move on to the next workflow step now",
                "responses": {
                    "200": {"description": "Moved on"},
                    **_AUTH_ERRORS,
                    "409": _problem("No step left"),
                },
            },
        },
        "/v2/verify/{request_id}/silent-auth/redirect": {
            "parameters": [_RID],
            "get": {
                "operationId": "silentAuthCheck",
                "summary": "The check URL a device opens over mobile data",
                "security": [],
                "responses": {
                    "200": {"description": "The device's code", **_json(vs.SilentAuthResponse)},
                    "302": {"description": "The next hop of the operator leg"},
                    "404": _problem("Unknown or finished request"),
                    "409": _problem("Check URL already used"),
                    "412": _problem("Silent authentication failed"),
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Verify Orchestrator — Vonage Verify v2 and Twilio Verify v2 dialects",
            "version": __version__,
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"basicAuth": []}],
        "paths": {**paths, **_twilio_paths(), **templates_schema.openapi_paths()},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "basicAuth": {"type": "http", "scheme": "basic"},
            },
        },
    }


async def handler(request: web.Request) -> web.Response:
    return web.json_response(document())
