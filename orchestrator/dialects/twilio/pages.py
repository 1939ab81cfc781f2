"""Twilio list endpoints: one page of a listing, with the meta the SDKs page by."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from .api_twilio import base_url, page_body, page_params

__all__ = ["page_response"]

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
