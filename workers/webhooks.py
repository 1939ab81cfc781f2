"""Webhook delivery: one attempt per job, signed at send time, retried as new deferred jobs."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import random
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.console import attempts
from orchestrator.dialects.twilio import webhook_events as twilio_webhooks
from orchestrator.security.netguard import UnsafeURL, is_forbidden_address
from orchestrator.security.signing import (
    standard_webhook_headers,
    twilio_signature,
    vonage_authorization,
)
from orchestrator.tenants.accounts import get_account
from orchestrator.tenants.apps import disable_status_url, get_app_cached
from orchestrator.timefmt import iso_ms, utcnow

__all__ = ["Attempt", "GuardedResolver", "attempt_delivery", "retry_delay"]

log = logging.getLogger("workers.webhooks")


def retry_delay(
    schedule: list[float], attempt: int, jitter: float, rng: random.Random
) -> float | None:
    """Seconds to wait after failed attempt number `attempt` (1-based), or None when exhausted."""
    if attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    return max(0.0, base * (1 + rng.uniform(-jitter, jitter)))


class GuardedResolver(AbstractResolver):
    """Resolves like the default resolver, then refuses non-public addresses (DNS rebinding:
    the check runs at connect time, on the very addresses aiohttp will dial)."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)  # type: ignore[arg-type]
        if not self._allow_private:
            for r in results:
                if is_forbidden_address(r["host"]):
                    raise OSError(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class Attempt:
    outcome: str  # delivered | retry | gone | dropped | fanout (copied to each endpoint)
    status: int | None = None
    # the attempt's console record (orchestrator/console/attempts.py) went out with the
    # delivered mark, in the same round trip; otherwise the caller writes it
    recorded: bool = False


def _literal_ip_forbidden(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: the resolver checks it
    return is_forbidden_address(host)


async def attempt_delivery(
    redis: Redis,
    session: aiohttp.ClientSession,
    message_id: str,
    *,
    allow_private: bool,
    request_timeout: float,
    retention_ms: int,
    attempt: int = 1,
    replay: int = 0,
) -> Attempt:
    """POST one webhook message once. The caller schedules the next attempt on `retry`.
    A delivered message (its body may name the destination) is kept `retention_ms` more, like
    the verification it reports on; an undelivered one for WEBHOOK_TTL, to retry and replay."""
    raw = await redis.hgetall(constants.WEBHOOK_PREFIX + message_id)  # type: ignore[misc]
    if not raw:
        return Attempt("dropped")
    record = {k.decode(): v for k, v in raw.items()}
    if record.get("delivered_ms"):
        return Attempt("delivered")
    if record.get("dialect") == b"twilio":
        return await _attempt_twilio(
            redis,
            session,
            message_id,
            record,
            allow_private=allow_private,
            request_timeout=request_timeout,
            retention_ms=retention_ms,
            attempt=attempt,
            replay=replay,
        )
    # cached per process for at most APP_CACHE_MAX_AGE_S (1 s): a status URL change or a 410
    # disable by another process takes effect within that bound, this process's at once
    app = await get_app_cached(redis, record["tenant"].decode())
    if app is None or not app.status_url or app.status_url_disabled:
        return Attempt("dropped")
    body: bytes = record["body"]
    url = app.status_url
    if not allow_private and _literal_ip_forbidden(url):
        log.warning("webhook %s not sent: status URL address is not public", message_id)
        return Attempt("retry")
    now = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "verify-orchestrator-webhooks/1",
        "Authorization": vonage_authorization(
            body, secret=app.signature_secret, api_key=app.api_key, application_id=app.id, now=now
        ),
        **standard_webhook_headers(app.webhook_secret, message_id, now, body),
    }
    status = await _post(session, message_id, url, body, headers, request_timeout)
    if status is None:
        return Attempt("retry")
    if 200 <= status < 300:
        await _mark_delivered(redis, message_id, now, retention_ms, (attempt, replay, status))
        return Attempt("delivered", status, recorded=True)
    if status == 410:
        await disable_status_url(redis, app.id)
        return Attempt("gone", status)
    return Attempt("retry", status)


async def _mark_delivered(
    redis: Redis,
    message_id: str,
    now: int,
    retention_ms: int,
    tried: tuple[int, int, int],
) -> None:
    """Delivered (a re-run job will not send it again); kept only as long as the retention.
    The attempt's console record (`tried`: attempt, replay, HTTP status) goes in the same write."""
    key = constants.WEBHOOK_PREFIX + message_id
    attempt, replay, status = tried
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(
            key,
            mapping={
                "delivered_ms": str(now * 1000),
                attempts.record_field(attempt, replay): attempts.record_value(
                    int(time.time() * 1000), "delivered", status
                ),
            },
        )
        pipe.pexpire(key, retention_ms)
        await pipe.execute()


@functools.lru_cache(maxsize=8)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total)  # frozen: one shared instance per value


async def _post(
    session: aiohttp.ClientSession,
    message_id: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    request_timeout: float,
) -> int | None:
    """POST once, never following redirects; the response status, or None if none came."""
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=_client_timeout(request_timeout),
        ) as resp:
            status = resp.status
            await resp.read()
    except (aiohttp.ClientError, OSError, TimeoutError, UnsafeURL) as exc:
        log.info("webhook %s attempt failed: %s", message_id, type(exc).__name__)
        return None
    return status


async def _attempt_twilio(
    redis: Redis,
    session: aiohttp.ClientSession,
    message_id: str,
    record: dict[str, bytes],
    *,
    allow_private: bool,
    request_timeout: float,
    retention_ms: int,
    attempt: int = 1,
    replay: int = 0,
) -> Attempt:
    """A Twilio event message: fanned out to its service's webhooks on its first job, then
    each endpoint's copy is POSTed form-encoded and signed with the account's auth token."""
    service_sid = record["tenant"].decode()
    webhook_sid = record.get("webhook_sid")
    if webhook_sid is None:
        children = await twilio_webhooks.fan_out(redis, message_id, int(time.time() * 1000))
        log.debug("webhook %s fanned out to %d endpoint(s)", message_id, len(children))
        return Attempt("fanout")
    wh = await twilio_webhooks.get_webhook(redis, service_sid, webhook_sid.decode())
    if wh is None or wh.status != "enabled":
        return Attempt("dropped")
    account = await get_account(redis, wh.account_sid)
    if account is None:
        return Attempt("dropped")
    url = wh.webhook_url
    if not allow_private and _literal_ip_forbidden(url):
        log.warning("webhook %s not sent: webhook URL address is not public", message_id)
        return Attempt("retry")
    params = {str(k): str(v) for k, v in json.loads(record["body"]).items()}
    body = urlencode(params).encode()
    now = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "verify-orchestrator-webhooks/1",
        "X-Twilio-Signature": twilio_signature(account.auth_token, url, params),
        "I-Twilio-Idempotency-Token": message_id,
        **standard_webhook_headers(account.webhook_secret, message_id, now, body),
    }
    status = await _post(session, message_id, url, body, headers, request_timeout)
    if status is None:
        return Attempt("retry")
    if 200 <= status < 300:
        await _mark_delivered(redis, message_id, now, retention_ms, (attempt, replay, status))
        return Attempt("delivered", status, recorded=True)
    if status == 410:
        await twilio_webhooks.disable_webhook(redis, service_sid, wh.sid, iso_ms(utcnow()))
        return Attempt("gone", status)
    return Attempt("retry", status)
