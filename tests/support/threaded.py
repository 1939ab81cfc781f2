"""Run an async peer (an aiohttp server used as `async with Peer(...) as peer`) on an event loop
of its own thread, so synchronous tests against real processes can use it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread; `run` hands it a coroutine and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def running(manager: AbstractAsyncContextManager[Any]) -> Iterator[tuple[Any, LoopThread]]:
    """`manager` entered on a loop thread: yields what it entered as, and the loop thread."""
    thread = LoopThread()
    try:
        entered = thread.run(manager.__aenter__)
        try:
            yield entered, thread
        finally:
            thread.run(lambda: manager.__aexit__(None, None, None))
    finally:
        thread.stop()
