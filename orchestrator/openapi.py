"""GET /openapi.json: the Vonage-dialect API, its schemas generated from the pydantic models."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import __version__
from .dialects import vonage_schema as vs

__all__ = ["document", "handler"]

_MODELS: list[type[BaseModel]] = [
    vs.VerifyRequest,
    vs.StartResponse,
    vs.CheckRequest,
    vs.CheckResponse,
    vs.SilentAuthResponse,
    vs.Problem,
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
}


@cache
def document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
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
                    "409": _problem("A verification to the same destination is in progress"),
                    "412": _problem("Silent auth cannot reach the number's network"),
                    "413": _problem("Body too large"),
                    "422": _problem("Invalid parameters"),
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
        "info": {"title": "Verify Orchestrator — Vonage Verify v2 dialect", "version": __version__},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"basicAuth": []}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "basicAuth": {"type": "http", "scheme": "basic"},
            },
        },
    }


async def handler(request: web.Request) -> web.Response:
    return web.json_response(document())
