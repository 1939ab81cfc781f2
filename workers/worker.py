"""An arq Worker that is woken by a Redis message when a job is due now, instead of waiting
for its next poll. Deferred jobs (timeouts, webhook retries) still come due on the poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq.connections import create_pool
from arq.worker import Worker
from redis.asyncio import Redis

from orchestrator.constants import WAKE_CHANNEL

__all__ = ["WakeableWorker"]

log = logging.getLogger("workers.worker")


class WakeableWorker(Worker):
    """Polls every `poll_delay`, and at once whenever the web process publishes a wake-up."""

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake))
        try:
            while True:
                wake.clear()
                await self._poll_iteration()
                if self.burst and await self._burst_done():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_delay_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started():
            await asyncio.gather(*self.tasks.values())
            return True
        if await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False

    async def _listen(self, wake: asyncio.Event) -> None:
        """Set `wake` on every published wake-up; reconnect quietly if Redis drops us."""
        while True:
            redis: Redis = Redis(connection_pool=self.pool.connection_pool)
            pubsub: Any = redis.pubsub()
            try:
                await pubsub.subscribe(WAKE_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("wake listener reconnecting: %s", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
