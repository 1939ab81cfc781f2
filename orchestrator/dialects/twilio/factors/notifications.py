"""Notifications: send a pending push challenge to its device again."""

from __future__ import annotations

from aiohttp import web

from orchestrator.dialects.twilio.context import read_form
from orchestrator.dialects.twilio.factors.challenges import check_open, push_ttl
from orchestrator.dialects.twilio.factors.common import caller_for, find_challenge, identity_of
from orchestrator.dialects.twilio.forms import invalid
from orchestrator.dialects.twilio.wire import tw_date
from orchestrator.factors import lifecycle
from orchestrator.tenants.accounts import new_sid
from orchestrator.timefmt import utcnow

__all__ = ["create_notification"]


# ---- notifications ------------------------------------------------------------------------------


async def create_notification(request: web.Request) -> web.Response:
    """Send a pending push challenge's notification again (Ttl 0-300 seconds, default 300)."""
    caller = await caller_for(request)
    identity = identity_of(request)
    form = await read_form(request)
    ttl = form.integer("Ttl", 0, 300)
    challenge = await find_challenge(caller, identity, request.match_info["challenge_sid"])
    if challenge.factor_type != "push":
        raise invalid("ChallengeSid")
    check_open(challenge)
    now = utcnow()
    sid = new_sid("NT")
    effective = push_ttl(challenge, now, 300 if ttl is None else ttl)
    await lifecycle.enqueue_push(caller.store.redis, challenge.sid, sid, effective)
    body = {
        "sid": sid,
        "account_sid": challenge.account_sid,
        "service_sid": challenge.service_sid,
        "entity_sid": challenge.entity_sid,
        "identity": challenge.identity,
        "challenge_sid": challenge.sid,
        "priority": "high",
        "ttl": 300 if ttl is None else ttl,
        "date_created": tw_date(now),
    }
    return web.json_response(body, status=201)
