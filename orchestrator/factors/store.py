"""Redis storage for entities, factors and challenges, with compare-and-set updates.

Each record is a JSON string carrying a `version`; `update()` writes only if the stored version
is still the one read, so two concurrent approvals of one challenge cannot both win. An update
may carry the event it causes (`events.prepare`), written in the same Lua call.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.factors.events import EMIT_LUA, PendingEvent
from orchestrator.factors.models import Challenge, Entity, Factor, Record

__all__ = ["FactorStore", "StaleWrite"]

M = TypeVar("M", bound=BaseModel)

# KEYS[1] the record; ARGV: the version read, the new JSON, and '' or an event (EMIT_LUA) that
# is written with the record, or not at all
_CAS = (
    EMIT_LUA
    + """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local decoded = cjson.decode(current)
if tostring(decoded['version']) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
if ARGV[3] ~= '' then emit_event(cjson.decode(ARGV[3])) end
return 1
"""
)


class StaleWrite(Exception):
    """The record changed (or vanished) since it was read."""


class FactorStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._cas = redis.register_script(_CAS)

    # keys ------------------------------------------------------------------------------------
    @staticmethod
    def entity_key(service_sid: str, identity: str) -> str:
        return f"{constants.ENTITY_PREFIX}{service_sid}:{identity}"

    @staticmethod
    def entities_index(service_sid: str) -> str:
        return f"{constants.ENTITY_INDEX_PREFIX}{service_sid}"

    @staticmethod
    def factor_key(sid: str) -> str:
        return constants.FACTOR_PREFIX + sid

    @staticmethod
    def factors_index(service_sid: str, identity: str) -> str:
        return f"{constants.FACTOR_INDEX_PREFIX}{service_sid}:{identity}"

    @staticmethod
    def challenge_key(sid: str) -> str:
        return constants.CHALLENGE_PREFIX + sid

    @staticmethod
    def challenges_index(service_sid: str, identity: str) -> str:
        return f"{constants.CHALLENGE_INDEX_PREFIX}{service_sid}:{identity}"

    # generic ---------------------------------------------------------------------------------
    async def _get(self, key: str, model: type[M]) -> M | None:
        raw = await self.redis.get(key)
        return None if raw is None else model.model_validate_json(raw)

    async def _update(self, key: str, record: Record, event: PendingEvent | None = None) -> None:
        """Write `record` if nobody wrote since it was read, with `event` if given; bump its
        version."""
        expected = str(record.version)
        record.version += 1
        args = [expected, record.model_dump_json(), event.arg if event is not None else ""]
        if not await self._cas(keys=[key], args=args):
            record.version -= 1
            raise StaleWrite(key)

    # entities --------------------------------------------------------------------------------
    async def get_entity(self, service_sid: str, identity: str) -> Entity | None:
        return await self._get(self.entity_key(service_sid, identity), Entity)

    async def add_entity(self, entity: Entity, created_ms: int) -> bool:
        """False when the identity already exists in the service."""
        key = self.entity_key(entity.service_sid, entity.identity)
        if not await self.redis.set(key, entity.model_dump_json(), nx=True):
            return False
        await self.redis.zadd(
            self.entities_index(entity.service_sid), {entity.identity: created_ms}
        )
        return True

    async def list_entities(
        self, service_sid: str, offset: int, count: int
    ) -> tuple[list[Entity], int]:
        index = self.entities_index(service_sid)
        total = int(await self.redis.zcard(index))
        names = await self.redis.zrange(index, offset, offset + count - 1)
        found = [await self.get_entity(service_sid, n.decode()) for n in names]
        return [e for e in found if e is not None], total

    async def delete_entity(self, entity: Entity) -> None:
        """The entity and everything under it: its factors and challenges."""
        for factor in await self.factors_of(entity.service_sid, entity.identity):
            await self.redis.delete(self.factor_key(factor.sid))
            await self._drop_credential(factor)
        for challenge_sid in await self.redis.zrange(
            self.challenges_index(entity.service_sid, entity.identity), 0, -1
        ):
            await self.redis.delete(self.challenge_key(challenge_sid.decode()))
        await self.redis.delete(
            self.entity_key(entity.service_sid, entity.identity),
            self.factors_index(entity.service_sid, entity.identity),
            self.challenges_index(entity.service_sid, entity.identity),
        )
        await self.redis.zrem(self.entities_index(entity.service_sid), entity.identity)

    # factors ---------------------------------------------------------------------------------
    async def get_factor(self, sid: str) -> Factor | None:
        return await self._get(self.factor_key(sid), Factor)

    async def add_factor(self, factor: Factor, created_ms: int) -> None:
        await self.redis.set(self.factor_key(factor.sid), factor.model_dump_json())
        await self.redis.zadd(
            self.factors_index(factor.service_sid, factor.identity), {factor.sid: created_ms}
        )

    async def update_factor(self, factor: Factor, event: PendingEvent | None = None) -> None:
        await self._update(self.factor_key(factor.sid), factor, event)

    async def factors_of(self, service_sid: str, identity: str) -> list[Factor]:
        sids = await self.redis.zrange(self.factors_index(service_sid, identity), 0, -1)
        found = [await self.get_factor(s.decode()) for s in sids]
        return [f for f in found if f is not None]

    async def delete_factor(self, factor: Factor) -> None:
        await self.redis.delete(self.factor_key(factor.sid))
        await self.redis.zrem(self.factors_index(factor.service_sid, factor.identity), factor.sid)
        await self._drop_credential(factor)

    # push credentials: the `kid` of a device's JWTs names its factor ---------------------------
    @staticmethod
    def credential_key(credential_sid: str) -> str:
        return constants.FACTOR_CREDENTIAL_PREFIX + credential_sid

    async def add_credential(self, credential_sid: str, factor_sid: str) -> None:
        await self.redis.set(self.credential_key(credential_sid), factor_sid)

    async def factor_by_credential(self, credential_sid: str) -> Factor | None:
        sid = await self.redis.get(self.credential_key(credential_sid))
        return None if sid is None else await self.get_factor(sid.decode())

    async def _drop_credential(self, factor: Factor) -> None:
        credential = factor.config.get("credential_sid")
        if isinstance(credential, str):
            await self.redis.delete(self.credential_key(credential))

    # challenges ------------------------------------------------------------------------------
    async def get_challenge(self, sid: str) -> Challenge | None:
        return await self._get(self.challenge_key(sid), Challenge)

    async def add_challenge(self, challenge: Challenge, created_ms: int) -> None:
        await self.redis.set(self.challenge_key(challenge.sid), challenge.model_dump_json())
        index = self.challenges_index(challenge.service_sid, challenge.identity)
        await self.redis.zadd(index, {challenge.sid: created_ms})

    async def update_challenge(
        self, challenge: Challenge, event: PendingEvent | None = None
    ) -> None:
        await self._update(self.challenge_key(challenge.sid), challenge, event)

    async def challenges_of(self, service_sid: str, identity: str) -> list[Challenge]:
        """Oldest first (the index is scored by creation time)."""
        sids = await self.redis.zrange(self.challenges_index(service_sid, identity), 0, -1)
        found = [await self.get_challenge(s.decode()) for s in sids]
        return [c for c in found if c is not None]
