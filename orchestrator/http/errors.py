"""One error middleware: every failure leaves in its dialect's error shape, never a traceback.

Which dialect owns a request is the app factory's choice (it is the module that knows them all);
each dialect's own `errors.handle` maps exceptions to its status codes and bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["ErrorHandler", "Handler", "middleware_for"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# runs the handler and answers what it raised in one dialect's shape
ErrorHandler = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def middleware_for(choose: Callable[[web.Request], ErrorHandler]) -> Middleware:
    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await choose(request)(request, handler)

    return error_middleware
