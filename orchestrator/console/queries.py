"""What the console shows, read from Redis: recent verifications, one verification's messages
and webhook messages. Reads only, batched per page (MGET and pipelines, no SCAN), so a console
page costs a handful of round trips whatever is stored.

Who may see what is decided here too (`Scope`): an operator sees everything, an account only
verifications whose `account` is its own, whichever index key was read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.console import attempts, index
from orchestrator.delivery.providers_file import Delivery
from orchestrator.domain.models import Status, Verification
from orchestrator.engine import jobs, outbox
from orchestrator.engine.store import Store, message_id
from orchestrator.tenants.apps import get_app

__all__ = [
    "Detail",
    "Filters",
    "Message",
    "Page",
    "Row",
    "Scope",
    "WebhookMessage",
    "detail",
    "mask_code",
    "recent",
    "tenant_account",
]

PAGE_SIZE = 50
# at most this many index entries are examined per page when filters leave most of them out
MAX_EXAMINED = 2_000
_BATCH = 200
MAX_TRIES_SHOWN = 50
_DIGITS = re.compile(r"\d")


@dataclass(frozen=True)
class Scope:
    """Whose verifications: `account` None is the operator (all of them)."""

    account: str | None

    def sees(self, v: Verification) -> bool:
        return self.account is None or v.account == self.account


@dataclass(frozen=True)
class Filters:
    status: Status | None = None
    destination: str | None = None  # normalized as the outbox does (digits, or lower case)
    tenant: str | None = None
    before_ms: int | None = None  # the page after this creation time (exclusive)


@dataclass(frozen=True)
class Row:
    v: Verification
    created_ms: int
    providers: list[str]  # who took each started step, in step order ("" unknown)


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    examined: int
    next_before: int | None  # the cursor of the next (older) page, None: none


def _key(scope: Scope, filters: Filters, tenant_account: str | None) -> str:
    if scope.account is not None:
        return index.account_key(scope.account)
    if tenant_account is not None:
        return index.account_key(tenant_account)
    return index.ALL_KEY


def _matches(v: Verification, filters: Filters) -> bool:
    if filters.status is not None and v.status is not filters.status:
        return False
    if filters.tenant and v.tenant != filters.tenant:
        return False
    if filters.destination:
        return any(filters.destination in outbox.destination_key(s.to) for s in v.steps)
    return True


def _parse(rid: str, raw: bytes | None) -> Verification | None:
    if raw is None:
        return None
    try:
        return Store.parse(rid, raw)[0]
    except ValueError:
        return None  # not a state string we can read: left out of the console, not a 500


def claimless(delivery: Delivery | None, channel: str, to: str) -> str:
    """The provider a step without send claims went to: the sandbox is the one provider that
    writes none (its outbox dedupes by message id); "" when the route has no sandbox."""
    if delivery is None:
        return ""
    for name in delivery.route(channel, to):
        config = delivery.providers.get(name)
        if config is not None and config.kind == "sandbox":
            return name
    return ""


async def recent(
    redis: Redis,
    scope: Scope,
    filters: Filters,
    limit: int = PAGE_SIZE,
    delivery: Delivery | None = None,
) -> Page:
    """The newest verifications the scope sees that match the filters, `limit` at most."""
    owner = await tenant_account(redis, filters.tenant) if filters.tenant else None
    key = _key(scope, filters, owner)
    top: float | str = "+inf" if filters.before_ms is None else f"({filters.before_ms}"
    rows: list[tuple[Verification, int]] = []
    examined = 0
    last_score: int | None = None
    exhausted = False
    while len(rows) < limit and examined < MAX_EXAMINED:
        entries = await redis.zrevrangebyscore(
            key, top, "-inf", start=0, num=_BATCH, withscores=True
        )
        if not entries:
            exhausted = True
            break
        ids = [m.decode() for m, _ in entries]
        values = await redis.mget([Store.key(i) for i in ids])
        for (rid, score), raw in zip(
            zip(ids, (s for _, s in entries), strict=True), values, strict=True
        ):
            examined += 1
            last_score = int(score)
            v = _parse(rid, raw)
            if v is not None and scope.sees(v) and _matches(v, filters):
                rows.append((v, int(score)))
                if len(rows) == limit:
                    break
        # several entries may share a millisecond: continue strictly below the last one seen
        # (BOUND: more than a batch of starts in one ms of one scope would skip some)
        top = f"({last_score}"
        if len(entries) < _BATCH and len(rows) < limit:
            exhausted = True
            break
    if not exhausted and last_score is not None:
        # a full page: is there anything older at all? (else no "older" link to an empty page)
        exhausted = not await redis.zcount(key, "-inf", f"({last_score}")
    providers = await _providers(redis, [v for v, _ in rows], delivery)
    page_rows = [Row(v, ms, providers.get(v.request_id, [])) for v, ms in rows]
    return Page(page_rows, examined, None if exhausted or last_score is None else last_score)


async def _providers(
    redis: Redis, vs: list[Verification], delivery: Delivery | None
) -> dict[str, list[str]]:
    """Per verification, which provider took each started step (from the send claims)."""
    wanted = [(v, i) for v in vs for i, s in enumerate(v.steps) if s.initiated_at]
    if not wanted:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for v, i in wanted:
            pipe.hgetall(f"{constants.SEND_CLAIM_PREFIX}{v.request_id}:{i}")
        claims = await pipe.execute()
    out: dict[str, list[str]] = {}
    for (v, i), claim in zip(wanted, claims, strict=True):
        step = v.steps[i]
        taker = _taker(claim) if claim else claimless(delivery, step.channel.value, step.to)
        out.setdefault(v.request_id, []).append(taker)
    return out


def _taker(claim: dict[bytes, bytes]) -> str:
    """The provider whose claim says it took the message; "" when none did."""
    for name, state in claim.items():
        if state.startswith(b"ok:"):
            return name.decode()
    return ""


# ---- one verification ---------------------------------------------------------------------


@dataclass
class Message:
    """One message of a step: what the providers' claims say, and the outbox copy (sandbox)."""

    step: int
    channel: str
    to: str
    provider: str = ""  # who took it, when the claims do not say (the sandbox writes none)
    claims: dict[str, str] = field(default_factory=dict)  # provider -> sending|failed|ok:<id>
    receipts: dict[str, list[str]] = field(default_factory=dict)  # provider -> statuses seen
    sent_at: str | None = None
    outbox: dict[str, Any] | None = None


@dataclass
class WebhookMessage:
    id: str
    kind: str
    created: str | None
    delivered: str | None
    attempts: int | None
    last_status: int | None
    replays: int
    failed: bool
    parent: str | None
    endpoint: str | None  # a Twilio copy's webhook sid
    next_attempt: str | None  # when the queued attempt is due, if one is
    fanned_out: int | None  # a Twilio event message: how many endpoint copies it was given
    tries: list[str] = field(default_factory=list)  # per-attempt log lines, when recorded
    body: str = ""


@dataclass
class Detail:
    v: Verification
    tenant_name: str
    messages: list[Message]
    webhooks: list[WebhookMessage]


def _iso(ms: bytes | str | int | None) -> str | None:
    if ms in (None, b"", ""):
        return None
    try:
        value = int(ms)
    except ValueError:
        return None
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def mask_code(message: dict[str, Any], sandbox: bool) -> dict[str, Any]:
    """A message as the console may show it: outside the sandbox its code is masked, in the
    `code` field and wherever the code's digits appear in its text (and every other string)."""
    if sandbox:
        return dict(message)
    code = str(message.get("code") or "")
    masked: dict[str, Any] = {}
    for k, value in message.items():
        if k == "code":
            masked[k] = "•" * len(code) if code else value
        elif isinstance(value, str) and code and code in value:
            masked[k] = value.replace(code, _DIGITS.sub("•", code))
        else:
            masked[k] = value
    return masked


async def app_names(redis: Redis, account: str | None, cap: int = 500) -> dict[str, str]:
    """Application id -> name, of one account (None: all), in two round trips."""
    ids = sorted(m.decode() for m in await redis.smembers(constants.APPS_SET))[:cap]  # type: ignore[misc]
    async with redis.pipeline(transaction=False) as pipe:
        for app_id in ids:
            pipe.hmget(constants.APP_PREFIX + app_id, ["name", "account_sid"])
        found = await pipe.execute()
    out: dict[str, str] = {}
    for app_id, (name, owner) in zip(ids, found, strict=True):
        if name is None:
            continue
        if account is None or (owner.decode() if owner else app_id) == account:
            out[app_id] = name.decode()
    return out


async def tenant_name(redis: Redis, tenant: str) -> str:
    """An application's name or a service's friendly name ("" unknown)."""
    if tenant.startswith("VA"):
        raw = await redis.get(constants.SERVICE_PREFIX + tenant)
        if raw is None:
            return ""
        try:
            return str(json.loads(raw).get("friendly_name", ""))
        except ValueError:
            return ""
    app = await get_app(redis, tenant)
    return app.name if app is not None else ""


async def tenant_account(redis: Redis, tenant: str) -> str | None:
    """The account an application or a service belongs to (None: it no longer exists)."""
    if tenant.startswith("VA"):
        raw = await redis.get(constants.SERVICE_PREFIX + tenant)
        if raw is None:
            return None
        try:
            return str(json.loads(raw).get("account_sid") or "") or None
        except ValueError:
            return None
    app = await get_app(redis, tenant)
    return app.account if app is not None else None


async def detail(
    redis: Redis,
    store: Store,
    scope: Scope,
    request_id: str,
    sandbox: bool,
    retries: int,
    delivery: Delivery | None = None,
) -> Detail | None:
    """Everything the console shows about one verification; None: not found or not visible."""
    loaded = await store.load(request_id)
    if loaded is None or not scope.sees(loaded[0]):
        return None
    v = loaded[0]
    return Detail(
        v,
        await tenant_name(redis, v.tenant),
        await _messages(redis, v, sandbox, delivery),
        await _webhooks(redis, v, retries),
    )


async def _messages(
    redis: Redis, v: Verification, sandbox: bool, delivery: Delivery | None
) -> list[Message]:
    started = [(i, s) for i, s in enumerate(v.steps) if s.initiated_at is not None]
    async with redis.pipeline(transaction=False) as pipe:
        for i, _ in started:
            pipe.hgetall(f"{constants.SEND_CLAIM_PREFIX}{v.request_id}:{i}")
        boxes = list(dict.fromkeys(outbox.destination_key(s.to) for _, s in started))
        scope = v.account or v.tenant
        for box in boxes:
            pipe.lrange(f"{constants.OUTBOX_PREFIX}{scope}:{box}", 0, outbox.OUTBOX_MAX - 1)
        answers = await pipe.execute()
    claims: list[dict[bytes, bytes]] = answers[: len(started)]
    sent: dict[str, dict[str, Any]] = {}
    for raw_list in answers[len(started) :]:
        for raw in raw_list:
            try:
                m = outbox.read_message(raw)
            except ValueError:
                continue
            if m.get("request_id") == v.request_id:
                sent.setdefault(str(m.get("id")), m)
    out: list[Message] = []
    for (i, s), claim in zip(started, claims, strict=True):
        msg = Message(i, s.channel.value, s.to)
        msg.claims = {k.decode(): val.decode() for k, val in claim.items()}
        copy = sent.get(f"{v.request_id}:{i}")
        msg.outbox = mask_code(copy, sandbox) if copy is not None else None
        if not msg.claims:
            msg.provider = claimless(delivery, s.channel.value, s.to)
            if copy is not None:
                msg.sent_at = str(copy.get("created_at") or "").replace("T", " ").rstrip("Z")
        out.append(msg)
    await _receipts(redis, out)
    return out


async def _receipts(redis: Redis, messages: list[Message]) -> None:
    """The vendor receipts each taken message has had (`vo:pmsg:{provider}:{vendor id}`)."""
    wanted = [
        (m, provider, state[3:])
        for m in messages
        for provider, state in m.claims.items()
        if state.startswith("ok:") and len(state) > 3
    ]
    if not wanted:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for _, provider, vendor_id in wanted:
            pipe.hgetall(f"{constants.PROVIDER_MESSAGE_PREFIX}{provider}:{vendor_id}")
        found = await pipe.execute()
    for (m, provider, _), mapping in zip(wanted, found, strict=True):
        fields = {k.decode(): val.decode() for k, val in mapping.items()}
        m.receipts[provider] = sorted(k[5:] for k in fields if k.startswith("seen:"))
        m.sent_at = m.sent_at or _iso(fields.get("sent_ms"))


async def _webhooks(redis: Redis, v: Verification, retries: int) -> list[WebhookMessage]:
    """The verification's webhook messages (ids derived from its emit count) and, for the
    Twilio dialect, each endpoint's copy of them."""
    ids = [message_id(v.request_id, seq) for seq in range(1, v.emitted + 1)]
    if v.dialect == "twilio" and ids:
        sids = await redis.zrange(constants.SERVICE_WEBHOOKS_PREFIX + v.tenant, 0, 99)
        ids += [f"{mid}-{sid.decode()}" for mid in ids for sid in sids]
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for mid in ids:
            pipe.hgetall(constants.WEBHOOK_PREFIX + mid)
            pipe.zscore(constants.WEBHOOK_FAILED_SET, mid)
        answers = await pipe.execute()
    found: list[tuple[str, dict[str, bytes], bool]] = []
    for n, mid in enumerate(ids):
        raw, failed = answers[2 * n], answers[2 * n + 1]
        if raw:
            found.append((mid, {k.decode(): val for k, val in raw.items()}, failed is not None))
    due = await _queued(redis, [(mid, rec) for mid, rec, _ in found], retries)
    return [_webhook(mid, rec, failed, due.get(mid)) for mid, rec, failed in found]


async def _queued(
    redis: Redis, records: list[tuple[str, dict[str, bytes]]], retries: int
) -> dict[str, str]:
    """When each message's queued attempt (if any) is due: its job ids are derived, so one
    ZMSCORE per message answers it."""
    if not records:
        return {}
    candidates: list[tuple[str, list[str]]] = []
    for mid, rec in records:
        replay = int(rec.get("replays", b"0") or 0)
        attempts = range(1, retries + 2)
        candidates.append((mid, [jobs.webhook_job_id(mid, a, replay) for a in attempts]))
    async with redis.pipeline(transaction=False) as pipe:
        for _, job_ids in candidates:
            pipe.zmscore(jobs.QUEUE, job_ids)
        scores = await pipe.execute()
    due: dict[str, str] = {}
    for (mid, _), found in zip(candidates, scores, strict=True):
        present = [s for s in found if s is not None]
        when = _iso(int(min(present))) if present else None
        if when:
            due[mid] = when
    return due


def _int(raw: bytes | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _webhook(mid: str, rec: dict[str, bytes], failed: bool, due: str | None) -> WebhookMessage:
    text = {k: val.decode(errors="replace") for k, val in rec.items()}
    tries = [
        attempts.describe(k, text[k]) for k in sorted(text) if k.startswith(attempts.FIELD_PREFIX)
    ][:MAX_TRIES_SHOWN]
    return WebhookMessage(
        id=mid,
        kind=text.get("kind", ""),
        created=_iso(text.get("created_ms")),
        delivered=_iso(text.get("delivered_ms")),
        attempts=_int(rec.get("attempts")),
        last_status=_int(rec.get("last_status")),
        replays=_int(rec.get("replays")) or 0,
        failed=failed,
        parent=text.get("parent"),
        endpoint=text.get("webhook_sid"),
        next_attempt=due,
        fanned_out=_int(rec.get("children")) if rec.get("fanout_ms") else None,
        tries=tries,
        body=text.get("body", ""),
    )
