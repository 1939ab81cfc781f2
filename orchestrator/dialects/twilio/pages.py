"""Twilio list endpoints: one page of a listing, with the meta the SDKs page by."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from orchestrator.dialects.twilio.context import base_url
from orchestrator.dialects.twilio.forms import Form

__all__ = ["page_body", "page_params", "page_response"]

T = TypeVar("T")

# (offset, count) -> that slice of the listing, and the listing's total
Fetch = Callable[[int, int], Awaitable[tuple[list[T], int]]]
Render = Callable[[T, str], dict[str, Any]]


async def page_response(
    request: web.Request, key: str, fetch: Fetch[T], resource: Render[T]
) -> web.Response:
    """The page the query asks for (Page, PageSize), each item rendered by `resource`."""
    page, size = page_params(request)
    found, total = await fetch(page * size, size)
    base = base_url(request)
    items = [resource(item, base) for item in found]
    return web.json_response(page_body(request, key, items, page, size, total))


def page_params(request: web.Request) -> tuple[int, int]:
    form = Form(request.query)
    size = form.integer("PageSize", 1, 1000) or 50
    page = form.integer("Page", 0, 10**6) or 0
    return page, size


def page_body(
    request: web.Request, key: str, items: list[dict[str, Any]], page: int, size: int, total: int
) -> dict[str, Any]:
    """A Twilio list page: absolute URLs built from the request, as the SDK follows them verbatim."""
    url = f"{base_url(request)}{request.path}"

    def page_url(n: int) -> str:
        return f"{url}?{urlencode({'PageSize': size, 'Page': n})}"

    has_next = (page + 1) * size < total
    return {
        key: items,
        "meta": {
            "page": page,
            "page_size": size,
            "first_page_url": page_url(0),
            "previous_page_url": page_url(page - 1) if page > 0 else None,
            "next_page_url": page_url(page + 1) if has_next else None,
            "url": page_url(page),
            "key": key,
        },
    }
