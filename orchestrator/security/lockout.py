"""Basic-auth brute force: after `auth_fail_limit` failed attempts for one username (api_key,
AC… or SK… sid), or `auth_fail_ip_limit` from one client IP, within `auth_fail_window_seconds`,
further Basic requests are answered 429 (Vonage problem+json "Rate Limit Hit", Twilio 20429)
without looking at the secret — the right one included — until the window lets go.

It is a middleware between the error middleware and the handlers, so both dialects and every
route get it without the handlers knowing. After a 401 (AuthError, or a Twilio 20003), one Lua
call counts the failure in sliding windows and, when a window is full, sets a block key that
lives until its oldest failure leaves the window, and publishes it. Attempts answered 429 are not
counted, so a lockout ends on its own.

Before the handler, the two block keys are looked up in this process's copy of them
(`BlockWatch`: a subscription to the published blocks, seeded by a SCAN once subscribed), so a
request pays no Redis round trip for the guard. While that copy is not live (starting, or Redis
dropped the subscription) the guard reads the keys with one MGET instead. BOUND: a block set by
another process applies here once its message arrives (well under a millisecond on one host);
the attempts that race it are counted like any other failure.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
from aiohttp import web
from redis.asyncio import Redis

from orchestrator import constants, metrics
from orchestrator.dialects.twilio.wire import TwilioError
from orchestrator.domain import errors
from orchestrator.engine.luascripts import registered
from orchestrator.http.keys import SERVICES
from orchestrator.security.auth import AuthError
from orchestrator.settings import Settings

__all__ = ["BlockWatch", "middleware", "record_failure", "setup", "throttled_for"]

log = logging.getLogger("orchestrator.authguard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# KEYS: per window a (fail window, block key) pair; ARGV[1]: member, then per window its limit
# and window in ms, then the channel blocks are published on. Counts the failure everywhere;
# blocks (and publishes the block) where the window is full. Returns {block key, until ms, ...}
# of the blocks it set, so the calling process knows them before its own message comes back.
_FAIL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local blocked = {}
for i = 1, #KEYS / 2 do
  local window_key = KEYS[2 * i - 1]
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', window_key, '-inf', now - window)
  redis.call('ZADD', window_key, now, ARGV[1])
  redis.call('PEXPIRE', window_key, window)
  local count = redis.call('ZCARD', window_key)
  if count >= limit then
    local entry = redis.call('ZRANGE', window_key, count - limit, count - limit, 'WITHSCORES')
    local until_ms = tonumber(entry[2]) + window
    if until_ms > now then
      redis.call('SET', KEYS[2 * i], tostring(until_ms), 'PX', until_ms - now)
      redis.call('PUBLISH', ARGV[#ARGV], KEYS[2 * i] .. ' ' .. tostring(until_ms))
      blocked[#blocked + 1] = KEYS[2 * i]
      blocked[#blocked + 1] = tostring(until_ms)
    end
  end
end
return blocked
"""


def _basic_user(header: str | None) -> str | None:
    """The username of a Basic header, or None when there is none or it cannot be read."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    user, _, password = decoded.partition(":")
    if user == "token":
        # every Verify Push device logs in as "token": lock out one device (its key id), or one
        # access token, never all of them at once
        return "token:" + _device_key(password)
    return user[:64]


def _device_key(token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        kid = None
    return str(kid)[:64] if isinstance(kid, str) and kid else constants.hashed_key_part(token)


def _scopes(settings: Settings, user: str, ip: str | None) -> list[tuple[str, str, int]]:
    """(scope, key suffix, limit) of each window that applies."""
    scopes: list[tuple[str, str, int]] = []
    if settings.auth_fail_limit > 0 and user:
        scopes.append(("user", "u:" + constants.hashed_key_part(user), settings.auth_fail_limit))
    if settings.auth_fail_ip_limit > 0 and ip:
        scopes.append(("ip", "ip:" + constants.hashed_key_part(ip), settings.auth_fail_ip_limit))
    return scopes


class BlockWatch:
    """This process's copy of the live block keys (key -> until, ms since the epoch)."""

    MAX_ENTRIES = 100_000

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._until: dict[str, int] = {}
        # True once subscribed and seeded, until the subscription fails
        self.live = False

    def lookup(self, keys: list[str]) -> list[int | None]:
        now_ms = time.time() * 1000
        found: list[int | None] = []
        for key in keys:
            until = self._until.get(key)
            if until is not None and until <= now_ms:
                del self._until[key]
                until = None
            found.append(until)
        return found

    def learn(self, key: str, until: int) -> None:
        if len(self._until) >= self.MAX_ENTRIES:
            self._prune()
        if until > self._until.get(key, 0):
            self._until[key] = until

    def _prune(self) -> None:
        now_ms = time.time() * 1000
        self._until = {k: u for k, u in self._until.items() if u > now_ms}

    async def run(self) -> None:
        """Follow the published blocks until cancelled; resubscribe after a Redis failure."""
        while True:
            pubsub: Any = self._redis.pubsub()
            try:
                await pubsub.subscribe(constants.AUTH_BLOCK_CHANNEL)
                await self._seed()
                self.live = True
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("auth block watch reconnecting: %s", type(exc).__name__)
            finally:
                self.live = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(0.5)

    async def _seed(self) -> None:
        """The blocks set before the subscription (messages from now on arrive anyway)."""
        self._until.clear()
        keys = [k async for k in self._redis.scan_iter(constants.AUTH_BLOCK_PREFIX + "*", 1000)]
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            for key, value in zip(chunk, await self._redis.mget(chunk), strict=True):
                if value is not None:
                    self.learn(key.decode(), int(value))

    def _on_message(self, data: bytes) -> None:
        key, _, until = data.decode().partition(" ")
        with contextlib.suppress(ValueError):
            self.learn(key, int(until))


BLOCK_WATCH = web.AppKey("auth_block_watch", BlockWatch)


def setup(app: web.Application) -> None:
    """Keep a BlockWatch for the app's lifetime (after the services context, which it uses)."""
    app.cleanup_ctx.append(_watch_ctx)


async def _watch_ctx(app: web.Application) -> AsyncIterator[None]:
    watch = app[BLOCK_WATCH] = BlockWatch(app[SERVICES].redis)
    task = asyncio.create_task(watch.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def throttled_for(
    redis: Redis,
    settings: Settings,
    user: str,
    ip: str | None,
    watch: BlockWatch | None = None,
) -> tuple[str, int] | None:
    """(scope, seconds left) when this username or IP is locked out, else None."""
    scopes = _scopes(settings, user, ip)
    if not scopes:
        return None
    keys = [constants.AUTH_BLOCK_PREFIX + suffix for _, suffix, _ in scopes]
    values: list[Any] = watch.lookup(keys) if watch is not None and watch.live else []
    if not values:
        values = await redis.mget(keys)
    now_ms = time.time() * 1000
    for (scope, _, _), value in zip(scopes, values, strict=True):
        if value is not None:
            left = max(1, int((int(value) - now_ms + 999) // 1000))
            return scope, left
    return None


async def record_failure(
    redis: Redis, settings: Settings, user: str, ip: str | None, watch: BlockWatch | None = None
) -> None:
    """Count one failed attempt; a block it sets applies in this process at once (the next
    request may come before the block's published message does)."""
    scopes = _scopes(settings, user, ip)
    if not scopes:
        return
    keys: list[str] = []
    args: list[str] = [secrets.token_hex(8)]
    window_ms = str(settings.auth_fail_window_seconds * 1000)
    for _, suffix, limit in scopes:
        keys += [constants.AUTH_FAIL_PREFIX + suffix, constants.AUTH_BLOCK_PREFIX + suffix]
        args += [str(limit), window_ms]
    args.append(constants.AUTH_BLOCK_CHANNEL)
    blocks = await registered(redis, _FAIL)(keys=keys, args=args)
    if watch is not None:
        for key, until in zip(blocks[::2], blocks[1::2], strict=True):
            watch.learn(_text(key), int(until))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _refused(exc: BaseException) -> bool:
    return isinstance(exc, AuthError) or (isinstance(exc, TwilioError) and exc.status == 401)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    user = _basic_user(request.headers.get("Authorization"))
    # not Basic, or a path no route serves (its 404 must stay a 404): nothing to guard
    if user is None or request.match_info.http_exception is not None:
        return await handler(request)
    services = request.app[SERVICES]
    settings = services.settings
    ip = request.remote
    locked = await throttled_for(services.redis, settings, user, ip, request.app.get(BLOCK_WATCH))
    if locked is not None:
        metrics.AUTH_THROTTLED.labels(locked[0]).inc()
        raise errors.Throttled("auth_" + locked[0], locked[1])
    try:
        return await handler(request)
    except Exception as exc:
        if _refused(exc):
            await record_failure(services.redis, settings, user, ip, request.app.get(BLOCK_WATCH))
        raise
