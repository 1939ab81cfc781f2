"""A webhook receiver on 127.0.0.1 inside the bench process: answers 204, counts, and reports summaries.

It is the application's status URL for the silent-auth flow and the webhook-throughput phases.
It does no signature checks (the worker's signing cost is still paid); it only records arrivals.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from .procs import free_port

__all__ = ["Receiver"]

PATH = "/hooks/status"


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.kinds: dict[str, int] = {}
        self._summaries: dict[str, asyncio.Future[float]] = {}
        self._target: tuple[int, asyncio.Future[float]] | None = None
        self._runner: web.AppRunner | None = None
        self.parse = True  # False in the throughput phase: count only
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}{PATH}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def expect_summary(self, request_id: str) -> asyncio.Future[float]:
        """A future set to perf_counter() when the `summary` webhook of `request_id` arrives."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._summaries[request_id] = fut
        return fut

    def forget(self, request_id: str) -> None:
        self._summaries.pop(request_id, None)

    def expect_count(self, n: int) -> asyncio.Future[float]:
        """A future set to perf_counter() when `n` deliveries in all have arrived."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if self.count >= n:
            fut.set_result(time.perf_counter())
        else:
            self._target = (n, fut)
        return fut

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.perf_counter()
        self.count += 1
        if self._target is not None and self.count >= self._target[0]:
            if not self._target[1].done():
                self._target[1].set_result(arrived)
            self._target = None
        if self.parse:
            try:
                data = json.loads(body)
            except ValueError:
                data = {}
            kind = str(data.get("type", "?"))
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if kind == "summary":
                fut = self._summaries.pop(str(data.get("request_id")), None)
                if fut is not None and not fut.done():
                    fut.set_result(arrived)
        return web.Response(status=204)
