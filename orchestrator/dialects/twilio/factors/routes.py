"""The Entities / Factors / Challenges / Notifications / AccessTokens URL table."""

from __future__ import annotations

from aiohttp import web

from orchestrator.dialects.twilio.factors.access_tokens import (
    create_access_token,
    fetch_access_token,
)
from orchestrator.dialects.twilio.factors.challenges import (
    create_challenge,
    fetch_challenge,
    list_challenges,
    update_challenge,
)
from orchestrator.dialects.twilio.factors.entities import (
    create_entity,
    delete_entity,
    fetch_entity,
    list_entities,
)
from orchestrator.dialects.twilio.factors.factors import (
    create_factor,
    delete_factor,
    fetch_factor,
    list_factors,
    update_factor,
)
from orchestrator.dialects.twilio.factors.notifications import create_notification

__all__ = ["setup_routes"]


def setup_routes(app: web.Application) -> None:
    r = app.router
    entities = "/v2/Services/{service_sid}/Entities"
    entity = entities + "/{identity}"
    r.add_post("/v2/Services/{service_sid}/AccessTokens", create_access_token)
    r.add_get("/v2/Services/{service_sid}/AccessTokens/{sid}", fetch_access_token)
    r.add_get(entities, list_entities)
    r.add_post(entities, create_entity)
    r.add_get(entity, fetch_entity)
    r.add_delete(entity, delete_entity)
    r.add_get(entity + "/Factors", list_factors)
    r.add_post(entity + "/Factors", create_factor)
    r.add_get(entity + "/Factors/{sid}", fetch_factor)
    r.add_post(entity + "/Factors/{sid}", update_factor)
    r.add_delete(entity + "/Factors/{sid}", delete_factor)
    r.add_get(entity + "/Challenges", list_challenges)
    r.add_post(entity + "/Challenges", create_challenge)
    r.add_get(entity + "/Challenges/{sid}", fetch_challenge)
    r.add_post(entity + "/Challenges/{sid}", update_challenge)
    r.add_post(entity + "/Challenges/{challenge_sid}/Notifications", create_notification)
