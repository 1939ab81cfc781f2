"""Accounts (AC…) and their API keys (SK…): the tenants behind both dialects."""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.tenants.apps import hash_secret

__all__ = [
    "Account",
    "ApiKey",
    "create_account",
    "create_api_key",
    "get_account",
    "new_sid",
    "resolve_basic",
]


def new_sid(prefix: str) -> str:
    """Twilio-shaped SIDs: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass
class Account:
    sid: str
    friendly_name: str
    auth_token: str  # the HMAC key of X-Twilio-Signature, so it is kept, like a signing secret
    webhook_secret: str
    date_created: str

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(self.auth_token.encode(), token.encode())


@dataclass
class ApiKey:
    sid: str
    account_sid: str
    friendly_name: str
    secret_hash: str
    date_created: str


async def create_account(redis: Redis, friendly_name: str, date_created: str) -> Account:
    account = Account(
        sid=new_sid("AC"),
        friendly_name=friendly_name,
        auth_token=secrets.token_hex(16),
        webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        date_created=date_created,
    )
    await redis.hset(constants.ACCOUNT_PREFIX + account.sid, mapping=asdict(account))  # type: ignore[misc]
    return account


async def get_account(redis: Redis, sid: str) -> Account | None:
    if not sid.startswith("AC") or len(sid) != 34:
        return None
    raw = await redis.hgetall(constants.ACCOUNT_PREFIX + sid)  # type: ignore[misc]
    if not raw:
        return None
    return Account(**{k.decode(): v.decode() for k, v in raw.items()})


async def create_api_key(
    redis: Redis, account_sid: str, friendly_name: str, date_created: str
) -> tuple[ApiKey, str]:
    secret = secrets.token_urlsafe(24)
    key = ApiKey(new_sid("SK"), account_sid, friendly_name, hash_secret(secret), date_created)
    await redis.hset(constants.API_KEY_SID_PREFIX + key.sid, mapping=asdict(key))  # type: ignore[misc]
    return key, secret


async def resolve_basic(redis: Redis, username: str, password: str) -> Account | None:
    """AC sid + auth token, or SK sid + secret: the account they open, else None."""
    if username.startswith("AC"):
        account = await get_account(redis, username)
        return account if account is not None and account.check_token(password) else None
    if username.startswith("SK") and len(username) == 34:
        raw = await redis.hgetall(constants.API_KEY_SID_PREFIX + username)  # type: ignore[misc]
        if not raw:
            return None
        key = ApiKey(**{k.decode(): v.decode() for k, v in raw.items()})
        if not hmac.compare_digest(key.secret_hash, hash_secret(password)):
            return None
        return await get_account(redis, key.account_sid)
    return None
