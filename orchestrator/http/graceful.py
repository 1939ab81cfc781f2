"""Serve an aiohttp app and drain it on SIGTERM/SIGINT.

`web.run_app` stops listening and then closes every connection: aiohttp (3.9-3.14) ignores the
bytes that arrive on a closed connection, so a request whose body is still uploading when the
signal comes never completes and its client sees the connection dropped. Here the shutdown
runs in three steps instead:

1. stop accepting connections (the listening socket closes; clients get "refused" at once);
2. wait, up to `shutdown_timeout`, until no request is in flight, counted by a middleware
   around every handler (bodies still arriving included; keep-alive clients may still send);
3. clean up as `run_app` does: close idle connections, run the app's cleanup contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["serve"]


@dataclass
class _InFlight:
    count: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()


_IN_FLIGHT = web.AppKey("graceful_in_flight", _InFlight)


@web.middleware
async def _count(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[_IN_FLIGHT]
    state.count += 1
    state.idle.clear()
    try:
        return await handler(request)
    finally:
        state.count -= 1
        if state.count == 0:
            state.idle.set()


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    shutdown_timeout: float,
) -> None:
    """Run `app` until SIGTERM or SIGINT, then drain it (see the module docstring)."""
    asyncio.run(_serve(app, host, port, ssl_context, shutdown_timeout))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    shutdown_timeout: float,
) -> None:
    in_flight = _InFlight()
    app[_IN_FLIGHT] = in_flight
    app.middlewares.insert(0, _count)  # outermost: counts every request the app handles
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        await stop.wait()
        await site.stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(shutdown_timeout):
                await in_flight.idle.wait()
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
