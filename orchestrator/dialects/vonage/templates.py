"""Vonage Verify v2 Templates and Template Fragments: create, list (HAL pages), get, update,
delete, under `/v2/verify/templates`.

Templates belong to the caller's account (Vonage scopes them to the API key, not to one
application), the same records Twilio's TemplateSid reads (orchestrator/templates/store.py).
A fragment's text is checked when it is written (orchestrator/templates/rules.py): `${code}`
required, the four placeholders only, one SMS segment at the placeholders' longest values; a
refusal is the dialect's 422 naming `text`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from orchestrator.dialects.vonage import wire as vonage
from orchestrator.dialects.vonage.errors import problem_response
from orchestrator.domain import errors
from orchestrator.http.body import read_json
from orchestrator.http.keys import SERVICES
from orchestrator.security.auth import authenticate
from orchestrator.services import Services
from orchestrator.templates import rules, store
from orchestrator.templates.schema import (
    CreateFragmentRequest,
    CreateTemplateRequest,
    PatchFragmentRequest,
    PatchTemplateRequest,
)

__all__ = ["setup_routes"]

PAGE_SIZE_DEFAULT = 10
PAGE_SIZE_MAX = 100


# store.TemplateError.kind -> status, title, detail
_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "template-not-found": (404, "Not Found", "Template was not found."),
    "template-fragment-not-found": (404, "Not Found", "Template Fragment was not found."),
    "template-exists": (409, "Conflict", "A template with this name already exists."),
    "fragment-exists": (
        409,
        "Conflict",
        "A template fragment for this channel and locale already exists.",
    ),
    "not-empty-template": (
        409,
        "Conflict",
        "The template is not empty and cannot be deleted. Please delete its fragments first.",
    ),
    "max-templates": (
        409,
        "Conflict",
        f"An account can only have a maximum of {store.MAX_TEMPLATES} custom templates.",
    ),
    "max-fragments": (
        409,
        "Conflict",
        f"A template can only have a maximum of {store.MAX_FRAGMENTS} fragments.",
    ),
}

Handler = Callable[[web.Request, Services, str], Awaitable[web.Response]]


def _handler(fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Authenticate (JWT or Basic, as every Vonage route), find the account, and answer a
    refused template operation with its problem+json."""

    async def handle(request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        header = request.headers.get("Authorization")
        principal = await authenticate(services.redis, header, services.settings.jwt_leeway_seconds)
        try:
            return await fn(request, services, principal.app.account)
        except store.TemplateError as exc:
            status, title, detail = _PROBLEMS[exc.kind]
            body = {
                "type": vonage.ERROR_BASE + exc.kind,
                "title": title,
                "detail": detail,
                "instance": str(uuid.uuid4()),
            }
            return problem_response(status, body)

    return handle


def _id(request: web.Request, name: str, kind: str) -> str:
    """A path id: a uuid, else the resource cannot exist (404)."""
    raw = request.match_info[name]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise store.TemplateError(kind) from None


def _parse(model: type[BaseModel], payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise errors.InvalidParameters([("body", "The request body must be a JSON object")])
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise errors.InvalidParameters(vonage.validation_problems(exc)) from None


def _check_text(text: str, channel: str) -> None:
    problems = rules.text_problems(text, channel)
    if problems:
        raise errors.InvalidParameters([("text", reason) for reason in problems])


def _base(services: Services) -> str:
    return services.settings.public_url.rstrip("/") + "/v2/verify/templates"


def _template_body(t: store.Template, base: str) -> dict[str, Any]:
    return {
        "template_id": t.id,
        "name": t.name,
        "is_default": t.is_default,
        "_links": {
            "self": {"href": f"{base}/{t.id}"},
            "fragments": {"href": f"{base}/{t.id}/template_fragments"},
        },
    }


def _fragment_body(t: store.Template, f: store.Fragment, base: str) -> dict[str, Any]:
    return {
        "template_fragment_id": f.id,
        "channel": f.channel,
        "locale": f.locale,
        "text": f.text,
        "date_created": f.created,
        "date_updated": f.updated,
        "_links": {
            "self": {"href": f"{base}/{t.id}/template_fragments/{f.id}"},
            "template": {"href": f"{base}/{t.id}"},
        },
    }


def _page_params(request: web.Request) -> tuple[int, int]:
    problems: list[tuple[str, str]] = []
    values: dict[str, int] = {}
    for name, default, hi in (("page_size", PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX), ("page", 1, 10**6)):
        raw = request.query.get(name)
        if raw is None:
            values[name] = default
        elif raw.isascii() and raw.isdigit() and 1 <= int(raw) <= hi:
            values[name] = int(raw)
        else:
            problems.append((name, f"{name} must be an integer from 1 to {hi}"))
    if problems:
        raise errors.InvalidParameters(problems)
    return values["page_size"], values["page"]


def _hal_page(
    url: str, key: str, items: list[dict[str, Any]], size: int, page: int
) -> dict[str, Any]:
    """One HAL page of `items` (the whole listing): Vonage's page_size/page/total_* and links."""
    total = len(items)
    pages = math.ceil(total / size)

    def link(n: int) -> dict[str, str]:
        return {"href": f"{url}?page_size={size}&page={n}"}

    links = {"self": link(page), "first": link(1), "last": link(max(pages, 1))}
    if page < pages:
        links["next"] = link(page + 1)
    if 1 < page <= pages + 1:
        links["prev"] = link(page - 1)
    return {
        "page_size": size,
        "page": page,
        "total_pages": pages,
        "total_items": total,
        "_embedded": {key: items[(page - 1) * size : page * size]},
        "_links": links,
    }


# ---- templates ----------------------------------------------------------------------------------


async def list_templates(request: web.Request, services: Services, account: str) -> web.Response:
    size, page = _page_params(request)
    base = _base(services)
    found = await store.list_templates(services.redis, account)
    items = [_template_body(t, base) for t in found]
    return web.json_response(_hal_page(base, "templates", items, size, page))


async def create_template(request: web.Request, services: Services, account: str) -> web.Response:
    body: CreateTemplateRequest = _parse(CreateTemplateRequest, await read_json(request))
    t = await store.create_template(services.redis, account, body.name)
    return web.json_response(_template_body(t, _base(services)), status=201)


async def get_template(request: web.Request, services: Services, account: str) -> web.Response:
    template_id = _id(request, "template_id", "template-not-found")
    t = await store.get_template(services.redis, account, template_id)
    return web.json_response(_template_body(t, _base(services)))


async def update_template(request: web.Request, services: Services, account: str) -> web.Response:
    template_id = _id(request, "template_id", "template-not-found")
    body: PatchTemplateRequest = _parse(PatchTemplateRequest, await read_json(request))
    t = await store.update_template(
        services.redis, account, template_id, name=body.name, is_default=body.is_default
    )
    return web.json_response(_template_body(t, _base(services)))


async def delete_template(request: web.Request, services: Services, account: str) -> web.Response:
    template_id = _id(request, "template_id", "template-not-found")
    await store.delete_template(services.redis, account, template_id)
    return web.Response(status=204)


# ---- fragments ----------------------------------------------------------------------------------


async def list_fragments(request: web.Request, services: Services, account: str) -> web.Response:
    template_id = _id(request, "template_id", "template-not-found")
    size, page = _page_params(request)
    t = await store.get_template(services.redis, account, template_id)
    base = _base(services)
    items = [_fragment_body(t, f, base) for f in t.fragments]
    url = f"{base}/{t.id}/template_fragments"
    return web.json_response(_hal_page(url, "template_fragments", items, size, page))


async def create_fragment(request: web.Request, services: Services, account: str) -> web.Response:
    template_id = _id(request, "template_id", "template-not-found")
    body: CreateFragmentRequest = _parse(CreateFragmentRequest, await read_json(request))
    # the template first: an unknown one is a 404 whatever the body says
    t = await store.get_template(services.redis, account, template_id)
    _check_text(body.text, body.channel)
    locale = body.locale.lower().replace("_", "-")
    f = await store.add_fragment(services.redis, account, t.id, body.channel, locale, body.text)
    return web.json_response(_fragment_body(t, f, _base(services)), status=201)


async def get_fragment(request: web.Request, services: Services, account: str) -> web.Response:
    template_id = _id(request, "template_id", "template-not-found")
    fragment_id = _id(request, "fragment_id", "template-fragment-not-found")
    t = await store.get_template(services.redis, account, template_id)
    return web.json_response(_fragment_body(t, t.fragment(fragment_id), _base(services)))


async def update_fragment(request: web.Request, services: Services, account: str) -> web.Response:
    template_id = _id(request, "template_id", "template-not-found")
    fragment_id = _id(request, "fragment_id", "template-fragment-not-found")
    body: PatchFragmentRequest = _parse(PatchFragmentRequest, await read_json(request))
    t = await store.get_template(services.redis, account, template_id)
    _check_text(body.text, t.fragment(fragment_id).channel)
    f = await store.update_fragment(services.redis, account, t.id, fragment_id, body.text)
    return web.json_response(_fragment_body(t, f, _base(services)))


async def delete_fragment(request: web.Request, services: Services, account: str) -> web.Response:
    template_id = _id(request, "template_id", "template-not-found")
    fragment_id = _id(request, "fragment_id", "template-fragment-not-found")
    await store.delete_fragment(services.redis, account, template_id, fragment_id)
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    r = app.router
    base = "/v2/verify/templates"
    r.add_get(base, _handler(list_templates))
    r.add_post(base, _handler(create_template))
    r.add_get(base + "/{template_id}", _handler(get_template))
    r.add_patch(base + "/{template_id}", _handler(update_template))
    r.add_delete(base + "/{template_id}", _handler(delete_template))
    fragments = base + "/{template_id}/template_fragments"
    r.add_get(fragments, _handler(list_fragments))
    r.add_post(fragments, _handler(create_fragment))
    r.add_get(fragments + "/{fragment_id}", _handler(get_fragment))
    r.add_patch(fragments + "/{fragment_id}", _handler(update_fragment))
    r.add_delete(fragments + "/{fragment_id}", _handler(delete_fragment))
