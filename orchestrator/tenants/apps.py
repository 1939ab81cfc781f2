"""Applications: the tenants' API clients, with their keys, secrets and status URL, in Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.engine.luascripts import registered

__all__ = [
    "APP_CACHE_MAX_AGE_S",
    "Application",
    "NewApplication",
    "create_app",
    "get_app",
    "get_app_by_api_key",
    "get_app_by_api_key_cached",
    "get_app_cached",
    "hash_secret",
    "list_apps",
    "update_app",
]


@dataclass
class Application:
    id: str
    name: str
    public_key_pem: str
    api_key: str
    api_secret_hash: str
    signature_secret: str
    webhook_secret: str
    status_url: str = ""
    status_url_disabled: bool = False
    created_at: str = ""
    # the account the application belongs to; its sandbox outbox is the account's
    account_sid: str = ""
    # SMS, WhatsApp and voice send no code to a number whose SIM changed within this many hours
    # ("" none); kept as text, as every field of the application's hash is
    sim_swap_max_age: str = ""

    @property
    def account(self) -> str:
        return self.account_sid or self.id

    @property
    def sim_swap_hours(self) -> int | None:
        return int(self.sim_swap_max_age) if self.sim_swap_max_age else None

    def check_api_secret(self, secret: str) -> bool:
        return hmac.compare_digest(self.api_secret_hash, hash_secret(secret))

    def public(self) -> dict[str, object]:
        """What `apps list` shows: no secrets."""
        return {
            "application_id": self.id,
            "name": self.name,
            "api_key": self.api_key,
            "status_url": self.status_url or None,
            "status_url_disabled": self.status_url_disabled,
            "account_sid": self.account_sid or None,
            "sim_swap_max_age_hours": self.sim_swap_hours,
            "created_at": self.created_at,
        }


@dataclass
class NewApplication:
    app: Application
    api_secret: str
    private_key_pem: str


def hash_secret(secret: str) -> str:
    # API secrets are long random strings, so one fast hash is enough to keep them unreadable at rest
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_app(
    redis: Redis, name: str, status_url: str, created_at: str, account_sid: str = ""
) -> NewApplication:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    api_secret = secrets.token_urlsafe(18)
    app = Application(
        id=str(uuid.uuid4()),
        name=name,
        public_key_pem=public_pem,
        api_key=secrets.token_hex(4),
        api_secret_hash=hash_secret(api_secret),
        signature_secret=secrets.token_urlsafe(32),
        webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        status_url=status_url,
        created_at=created_at,
        account_sid=account_sid,
    )
    await _save(redis, app)
    await redis.set(constants.APIKEY_PREFIX + app.api_key, app.id)
    await redis.sadd(constants.APPS_SET, app.id)  # type: ignore[misc]
    return NewApplication(app, api_secret, private_pem)


async def _save(redis: Redis, app: Application) -> None:
    fields = {
        k: ("1" if v is True else "" if v is False else str(v)) for k, v in asdict(app).items()
    }
    await redis.hset(constants.APP_PREFIX + app.id, mapping=fields)  # type: ignore[misc]


def _from_fields(data: dict[str, str]) -> Application:
    disabled = data.pop("status_url_disabled", "") == "1"
    return Application(**data, status_url_disabled=disabled)


async def get_app(redis: Redis, app_id: str) -> Application | None:
    raw = await redis.hgetall(constants.APP_PREFIX + app_id)  # type: ignore[misc]
    if not raw:
        return None
    return _from_fields({k.decode(): v.decode() for k, v in raw.items()})


# A per-process cache for the webhook worker and for authentication, which would otherwise read
# the application's hash once per delivery or request. BOUND: an entry is at most APP_CACHE_MAX_AGE_S old (timed from before its
# read), so a status URL change, re-enable or 410 disable made by another process takes effect
# within that time; update_app and disable_status_url update this process's cache at once.
# Entries are shared: callers must not mutate them. Missing applications are not cached.
APP_CACHE_MAX_AGE_S = 1.0
_APP_CACHE_MAX_ENTRIES = 4096
_app_cache: dict[str, tuple[float, Application]] = {}
# bumped by this process's writes: a read that overlapped one is not cached
_app_cache_gen = 0


async def get_app_cached(
    redis: Redis, app_id: str, max_age: float = APP_CACHE_MAX_AGE_S
) -> Application | None:
    """get_app, answered from this process's cache when its entry is under `max_age` s old."""
    return await _cached(_app_cache, app_id, max_age, lambda: get_app(redis, app_id))


async def _cached(
    cache: dict[str, tuple[float, Application]],
    key: str,
    max_age: float,
    read: Callable[[], Awaitable[Application | None]],
) -> Application | None:
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    gen = _app_cache_gen
    app = await read()
    if app is None:
        cache.pop(key, None)
        return None
    if gen == _app_cache_gen:  # no write of this process overlapped the read
        if len(cache) >= _APP_CACHE_MAX_ENTRIES:
            cache.clear()
        cache[key] = (now, app)
    return app


# the api key's application id, then that application's hash: one round trip for Basic auth
_BY_API_KEY = """
local app_id = redis.call('GET', KEYS[1])
if not app_id then return {} end
return redis.call('HGETALL', ARGV[1] .. app_id)
"""


async def get_app_by_api_key(redis: Redis, api_key: str) -> Application | None:
    flat = await registered(redis, _BY_API_KEY)(
        keys=[constants.APIKEY_PREFIX + api_key], args=[constants.APP_PREFIX]
    )
    if not flat:
        return None
    it = iter(flat)
    return _from_fields({k.decode(): v.decode() for k, v in zip(it, it, strict=True)})


_key_cache: dict[str, tuple[float, Application]] = {}


async def get_app_by_api_key_cached(
    redis: Redis, api_key: str, max_age: float = APP_CACHE_MAX_AGE_S
) -> Application | None:
    """get_app_by_api_key through this process's cache (same bound as get_app_cached): Basic
    auth checks the secret against the cached hash. An api key and its secret never change, so
    only the application's other fields (status URL) may be up to `max_age` s old."""
    return await _cached(_key_cache, api_key, max_age, lambda: get_app_by_api_key(redis, api_key))


async def list_apps(redis: Redis) -> list[Application]:
    ids = sorted(m.decode() for m in await redis.smembers(constants.APPS_SET))  # type: ignore[misc]
    found = [await get_app(redis, i) for i in ids]
    return [a for a in found if a is not None]


async def update_app(
    redis: Redis,
    app_id: str,
    *,
    name: str | None = None,
    status_url: str | None = None,
    enable_status_url: bool = False,
    sim_swap_max_age_hours: int | None = None,
) -> Application | None:
    """Change what is given; `sim_swap_max_age_hours` 0 turns the SIM-swap check off."""
    app = await get_app(redis, app_id)
    if app is None:
        return None
    if sim_swap_max_age_hours is not None:
        app.sim_swap_max_age = str(sim_swap_max_age_hours) if sim_swap_max_age_hours else ""
    if name is not None:
        app.name = name
    if status_url is not None:
        app.status_url = status_url
        app.status_url_disabled = False
    if enable_status_url:
        app.status_url_disabled = False
    await _save(redis, app)
    _forget(app_id)
    return app


def _forget(app_id: str) -> None:
    global _app_cache_gen
    _app_cache_gen += 1
    _app_cache.pop(app_id, None)
    _key_cache.clear()


async def disable_status_url(redis: Redis, app_id: str) -> None:
    """The receiver answered 410 Gone: stop sending until the URL is changed or re-enabled."""
    await redis.hset(constants.APP_PREFIX + app_id, "status_url_disabled", "1")  # type: ignore[misc]
    # this process stops at once; other processes within APP_CACHE_MAX_AGE_S
    global _app_cache_gen
    _app_cache_gen += 1
    hit = _app_cache.get(app_id)
    if hit is not None:
        _app_cache[app_id] = (hit[0], replace(hit[1], status_url_disabled=True))
    _key_cache.clear()
