"""Lua scripts run by SHA (EVALSHA), registered once per Redis client instead of sent per call."""

from __future__ import annotations

import weakref

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

__all__ = ["registered"]

_BY_CLIENT: weakref.WeakKeyDictionary[Redis, dict[str, AsyncScript]] = weakref.WeakKeyDictionary()


def registered(redis: Redis, text: str) -> AsyncScript:
    """`redis.register_script(text)`, made once per client; the script loads on first NOSCRIPT."""
    scripts = _BY_CLIENT.get(redis)
    if scripts is None:
        scripts = _BY_CLIENT[redis] = {}
    script = scripts.get(text)
    if script is None:
        script = scripts[text] = redis.register_script(text)
    return script
