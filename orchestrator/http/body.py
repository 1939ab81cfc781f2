"""Reading a request's JSON body: a malformed one is the caller's 400, never our 500."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = ["BadJSON", "read_json"]


class BadJSON(Exception):
    """The body is not JSON; each dialect's error handler answers it in its own shape."""


async def read_json(request: web.Request) -> Any:
    """The body as JSON; a malformed body is the caller's error (400), never ours."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    # ValueError also covers bad UTF-8 and integers over Python's digit limit; RecursionError is
    # deeply nested arrays/objects: all are the caller's malformed JSON, not a 500
    except (ValueError, RecursionError):
        raise BadJSON() from None
