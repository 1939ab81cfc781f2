"""Entities: create, fetch, list and delete (an opaque identity and nothing else)."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from orchestrator.dialects.twilio.context import base_url, read_form
from orchestrator.dialects.twilio.factors.common import (
    add_entity,
    caller_for,
    entity_resource,
    find_entity,
    identity_of,
    identity_param,
)
from orchestrator.dialects.twilio.pages import page_response
from orchestrator.dialects.twilio.wire import TwilioError
from orchestrator.factors import events, lifecycle

__all__ = ["create_entity", "delete_entity", "fetch_entity", "list_entities"]


# ---- entities -----------------------------------------------------------------------------------


async def create_entity(request: web.Request) -> web.Response:
    caller = await caller_for(request)
    form = await read_form(request)
    identity = identity_param(form)
    entity = await add_entity(caller, identity)
    if entity is None:
        raise TwilioError(409, 20409, f"Entity {identity} already exists")
    return web.json_response(entity_resource(entity, base_url(request)), status=201)


async def fetch_entity(request: web.Request) -> web.Response:
    caller = await caller_for(request)
    entity = await find_entity(caller, identity_of(request))
    return web.json_response(entity_resource(entity, base_url(request)))


async def list_entities(request: web.Request) -> web.Response:
    caller = await caller_for(request)
    fetch = partial(caller.store.list_entities, caller.service.sid)
    return await page_response(request, "entities", fetch, entity_resource)


async def delete_entity(request: web.Request) -> web.Response:
    """The entity, its factors (each with a factor.deleted event) and its challenges."""
    caller = await caller_for(request)
    entity = await find_entity(caller, identity_of(request))
    factors = await caller.store.factors_of(entity.service_sid, entity.identity)
    challenges = await caller.store.challenges_of(entity.service_sid, entity.identity)
    await caller.store.delete_entity(entity)
    for challenge in challenges:
        if challenge.status == "pending":
            await lifecycle.cancel_expiry(caller.store.redis, challenge.sid)
    for factor in factors:
        await events.emit(caller.store.redis, "factor.deleted", factor)
    return web.Response(status=204)
