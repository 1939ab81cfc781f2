"""An account's message templates and their fragments, in one Redis hash per account.

Vonage scopes templates to the account (its API key), not to one application, and Twilio lists
them per account too; so both dialects read the same records: the Vonage dialect by uuid
(`template_id`), the Twilio one by `HJ` + the uuid's 32 hex digits. The hash
`vo:tpls:{account}` holds `t:<uuid>` -> the template as JSON (its fragments inside: a start reads
one field) and `default` -> the default template's uuid. Every change is a WATCH/MULTI
read-modify-write of that one hash, so the limits (10 templates, unique names, one fragment per
channel and locale) hold under concurrent requests.

A start without `template_id` uses the account's default template; `default_template` answers
from a per-process copy at most one second old (dropped at once on this process's own writes),
so a Vonage start costs no extra round trip for it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import WatchError

from orchestrator import constants
from orchestrator.timefmt import iso_ms, utcnow

__all__ = [
    "MAX_FRAGMENTS",
    "MAX_TEMPLATES",
    "Fragment",
    "Template",
    "TemplateError",
    "add_fragment",
    "create_template",
    "default_template",
    "delete_fragment",
    "delete_template",
    "get_template",
    "id_for_sid",
    "list_templates",
    "sid_for",
    "update_fragment",
    "update_template",
]

MAX_TEMPLATES = 10
# two channels times the locales the catalogue has, with room to spare
MAX_FRAGMENTS = 60
DEFAULT_CACHE_MAX_AGE_S = 1.0
_DEFAULT_FIELD = "default"
_CACHE_MAX = 4096

T = TypeVar("T")


class TemplateError(Exception):
    """A refused template operation; `kind` is the Vonage error anchor that names it
    (template-not-found, template-fragment-not-found, template-exists, fragment-exists,
    not-empty-template, max-templates, max-fragments)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Fragment:
    id: str
    channel: str
    locale: str
    text: str
    created: str
    updated: str


@dataclass
class Template:
    id: str
    name: str
    created: str
    updated: str
    is_default: bool = False
    # creation order within the account (timestamps can tie within a millisecond)
    order: int = 0
    # author-defined placeholders (Twilio's TemplateCustomSubstitutions fill them)
    variables: list[str] = field(default_factory=list)
    fragments: list[Fragment] = field(default_factory=list)

    @property
    def sid(self) -> str:
        return sid_for(self.id)

    def fragment(self, fragment_id: str) -> Fragment:
        for f in self.fragments:
            if f.id == fragment_id:
                return f
        raise TemplateError("template-fragment-not-found")


def sid_for(template_id: str) -> str:
    """The Twilio sid of a template: HJ + its uuid's hex digits."""
    return "HJ" + uuid.UUID(template_id).hex


def id_for_sid(sid: str) -> str | None:
    """The uuid behind an `HJ…` sid; None for anything else."""
    if len(sid) != 34 or not sid.startswith("HJ"):
        return None
    try:
        return str(uuid.UUID(hex=sid[2:]))
    except ValueError:
        return None


def _key(account: str) -> str:
    return constants.TEMPLATES_PREFIX + account


def _decode(raw: bytes | str, default_id: str | None) -> Template:
    data: dict[str, Any] = json.loads(raw)
    fragments = [Fragment(**f) for f in data.pop("fragments", [])]
    data.pop("is_default", None)
    t = Template(**data, fragments=fragments)
    t.is_default = t.id == default_id
    return t


def _encode(t: Template) -> str:
    data = asdict(t)
    data.pop("is_default")
    return json.dumps(data, separators=(",", ":"))


def _parse_all(raw: dict[bytes, bytes]) -> tuple[dict[str, Template], str | None]:
    default_id = raw.get(_DEFAULT_FIELD.encode())
    default = default_id.decode() if default_id else None
    found = {}
    for name, value in raw.items():
        if name.startswith(b"t:"):
            t = _decode(value, default)
            found[t.id] = t
    return found, default


async def list_templates(redis: Redis, account: str) -> list[Template]:
    """The account's templates, oldest first."""
    found, _ = _parse_all(await redis.hgetall(_key(account)))  # type: ignore[misc]
    return sorted(found.values(), key=lambda t: (t.order, t.created, t.id))


async def get_template(redis: Redis, account: str, template_id: str) -> Template:
    raw, default = await redis.hmget(_key(account), ["t:" + template_id, _DEFAULT_FIELD])  # type: ignore[misc]
    if raw is None:
        raise TemplateError("template-not-found")
    return _decode(raw, default.decode() if default else None)


# account -> (monotonic time read, its default template or None)
_DEFAULTS: dict[str, tuple[float, Template | None]] = {}


async def default_template(redis: Redis, account: str) -> Template | None:
    """The account's default template, from a copy at most a second old."""
    now = time.monotonic()
    cached = _DEFAULTS.get(account)
    if cached is not None and now - cached[0] < DEFAULT_CACHE_MAX_AGE_S:
        return cached[1]
    found: Template | None = None
    default = await redis.hget(_key(account), _DEFAULT_FIELD)  # type: ignore[misc]
    if default:
        try:
            found = await get_template(redis, account, default.decode())
        except TemplateError:
            found = None
    if len(_DEFAULTS) >= _CACHE_MAX:
        _DEFAULTS.clear()
    _DEFAULTS[account] = (now, found)
    return found


Change = Callable[[dict[str, Template], str | None], tuple[T, dict[str, str | None]]]


async def _mutate(redis: Redis, account: str, change: Change[T]) -> T:
    """Run `change` on the account's templates and write the fields it returns (None deletes),
    all or nothing: a concurrent write to the hash makes it run again on the new contents."""
    key = _key(account)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                templates, default = _parse_all(await pipe.hgetall(key))  # type: ignore[misc]
                result, writes = change(templates, default)
                pipe.multi()  # type: ignore[no-untyped-call]
                sets = {k: v for k, v in writes.items() if v is not None}
                deletes = [k for k, v in writes.items() if v is None]
                if sets:
                    pipe.hset(key, mapping=sets)
                if deletes:
                    pipe.hdel(key, *deletes)
                await pipe.execute()
                break
            except WatchError:
                continue
    _DEFAULTS.pop(account, None)
    return result


def _now() -> str:
    return iso_ms(utcnow())


def _found(templates: dict[str, Template], template_id: str) -> Template:
    t = templates.get(template_id)
    if t is None:
        raise TemplateError("template-not-found")
    return t


async def create_template(
    redis: Redis, account: str, name: str, variables: list[str] | None = None
) -> Template:
    """A new template; the account's first becomes its default."""

    def change(
        templates: dict[str, Template], default: str | None
    ) -> tuple[Template, dict[str, str | None]]:
        if any(t.name == name for t in templates.values()):
            raise TemplateError("template-exists")
        if len(templates) >= MAX_TEMPLATES:
            raise TemplateError("max-templates")
        now = _now()
        order = max((o.order for o in templates.values()), default=0) + 1
        t = Template(
            str(uuid.uuid4()), name, now, now, order=order, variables=list(variables or [])
        )
        writes: dict[str, str | None] = {"t:" + t.id: _encode(t)}
        if not templates or default not in templates:
            writes[_DEFAULT_FIELD] = t.id
            t.is_default = True
        return t, writes

    return await _mutate(redis, account, change)


async def update_template(
    redis: Redis,
    account: str,
    template_id: str,
    *,
    name: str | None = None,
    is_default: bool | None = None,
) -> Template:
    """Rename a template and/or make it (or stop it being) the default."""

    def change(
        templates: dict[str, Template], default: str | None
    ) -> tuple[Template, dict[str, str | None]]:
        t = _found(templates, template_id)
        writes: dict[str, str | None] = {}
        if name is not None and name != t.name:
            if any(o.name == name for o in templates.values() if o.id != t.id):
                raise TemplateError("template-exists")
            t.name = name
        if is_default is True:
            writes[_DEFAULT_FIELD] = t.id
            t.is_default = True
        elif is_default is False and t.is_default:
            writes[_DEFAULT_FIELD] = None
            t.is_default = False
        t.updated = _now()
        writes["t:" + t.id] = _encode(t)
        return t, writes

    return await _mutate(redis, account, change)


async def delete_template(redis: Redis, account: str, template_id: str) -> None:
    """Delete a template that has no fragments left."""

    def change(
        templates: dict[str, Template], default: str | None
    ) -> tuple[None, dict[str, str | None]]:
        t = _found(templates, template_id)
        if t.fragments:
            raise TemplateError("not-empty-template")
        writes: dict[str, str | None] = {"t:" + t.id: None}
        if default == t.id:
            writes[_DEFAULT_FIELD] = None
        return None, writes

    await _mutate(redis, account, change)


async def add_fragment(
    redis: Redis, account: str, template_id: str, channel: str, locale: str, text: str
) -> Fragment:
    """A template's text for one channel and locale (unique per template)."""

    def change(
        templates: dict[str, Template], default: str | None
    ) -> tuple[Fragment, dict[str, str | None]]:
        t = _found(templates, template_id)
        if any(f.channel == channel and f.locale == locale for f in t.fragments):
            raise TemplateError("fragment-exists")
        if len(t.fragments) >= MAX_FRAGMENTS:
            raise TemplateError("max-fragments")
        now = _now()
        f = Fragment(str(uuid.uuid4()), channel, locale, text, now, now)
        t.fragments.append(f)
        return f, {"t:" + t.id: _encode(t)}

    return await _mutate(redis, account, change)


async def update_fragment(
    redis: Redis, account: str, template_id: str, fragment_id: str, text: str
) -> Fragment:
    def change(
        templates: dict[str, Template], default: str | None
    ) -> tuple[Fragment, dict[str, str | None]]:
        t = _found(templates, template_id)
        f = t.fragment(fragment_id)
        f.text = text
        f.updated = _now()
        return f, {"t:" + t.id: _encode(t)}

    return await _mutate(redis, account, change)


async def delete_fragment(redis: Redis, account: str, template_id: str, fragment_id: str) -> None:
    def change(
        templates: dict[str, Template], default: str | None
    ) -> tuple[None, dict[str, str | None]]:
        t = _found(templates, template_id)
        t.fragments.remove(t.fragment(fragment_id))
        return None, {"t:" + t.id: _encode(t)}

    await _mutate(redis, account, change)
