"""The aiohttp application: `create_app(settings)`, the one module that knows every dialect."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from orchestrator.console import routes as console
from orchestrator.delivery import routes as receipt_routes
from orchestrator.delivery.providers_file import delivery_for
from orchestrator.dialects import silent_auth
from orchestrator.dialects.twilio import errors as twilio_errors
from orchestrator.dialects.twilio import (
    passkey_routes,
    ratelimits,
    services,
    verifications,
    webhooks,
)
from orchestrator.dialects.twilio import templates as twilio_templates
from orchestrator.dialects.twilio.factors import routes as factors
from orchestrator.dialects.vonage import errors as vonage_errors
from orchestrator.dialects.vonage import routes as vonage
from orchestrator.dialects.vonage import templates as vonage_templates
from orchestrator.handoff import routes as handoff
from orchestrator.http import errors, metrics, openapi
from orchestrator.http.keys import DELIVERY, SERVICES, SETTINGS
from orchestrator.operators.operators_file import operators_config_for
from orchestrator.redisconn import redis_client
from orchestrator.sandbox import operator_api, outbox_api, passkeys_demo
from orchestrator.security import forwarded, lockout
from orchestrator.services import build_services
from orchestrator.settings import Settings
from orchestrator.workflows import registry as workflows

__all__ = ["create_app"]


def _dialect_errors(request: web.Request) -> errors.ErrorHandler:
    return twilio_errors.handle if twilio_errors.owns(request.path) else vonage_errors.handle


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = redis_client(settings)
    services = app[SERVICES] = await build_services(settings, redis)
    yield
    await services.close()
    await redis.aclose()


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        await services.redis.ping()
    except Exception:
        return web.json_response({"status": "unavailable", "redis": False}, status=503)
    return web.json_response({"status": "ok", "redis": True})


def create_app(settings: Settings) -> web.Application:
    """The web application; raises ProvidersFileError / OperatorsFileError /
    WorkflowsFileError (one line) for an unusable providers, operators or workflows file."""
    # the client's address first (behind trusted proxies), then metrics (it sees the final
    # status); the Basic-auth guard innermost (it sees the handlers' 401s before the error
    # middleware turns them into responses)
    app = web.Application(
        middlewares=[
            forwarded.middleware_for(settings.trusted_proxies),
            metrics.middleware,
            errors.middleware_for(_dialect_errors),
            lockout.middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[DELIVERY] = delivery_for(settings)
    operators_config_for(settings)  # an unusable operators file stops here, in one line
    workflows.setup(app, settings)  # so does a workflows file that doesn't check
    app.cleanup_ctx.append(_services_ctx)
    lockout.setup(app)
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi.handler)
    app.router.add_get("/metrics", metrics.handler)
    vonage.setup_routes(app)
    vonage_templates.setup_routes(app)
    twilio_templates.setup_routes(app)
    silent_auth.setup_routes(app)
    handoff.setup_routes(app)
    services.setup_routes(app)
    verifications.setup_routes(app)
    passkey_routes.setup_routes(app)
    if settings.sandbox:
        passkeys_demo.setup_routes(app)
    webhooks.setup_routes(app)
    factors.setup_routes(app)
    ratelimits.setup_routes(app)
    receipt_routes.setup_routes(app)
    console.setup_routes(app)
    if settings.sandbox:
        outbox_api.setup_routes(app)
        operator_api.setup_routes(app)
    return app
