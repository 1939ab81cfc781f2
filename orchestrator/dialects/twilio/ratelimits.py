"""Twilio Verify v2 routes: a service's RateLimits (RK…) and their Buckets (BL…)."""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web

from orchestrator.dialects.twilio import ratelimit_store as ratelimits
from orchestrator.dialects.twilio import wire as tw
from orchestrator.dialects.twilio.context import base_url, read_form, service_for
from orchestrator.dialects.twilio.forms import invalid
from orchestrator.dialects.twilio.pages import page_response
from orchestrator.dialects.twilio.ratelimit_store import Bucket, RateLimit
from orchestrator.domain import errors
from orchestrator.services import Services
from orchestrator.tenants.accounts import new_sid
from orchestrator.tenants.verify_services import Service
from orchestrator.timefmt import iso_ms, utcnow

__all__ = ["bucket_resource", "rate_limit_resource", "setup_routes"]

_UNIQUE_NAME = r"[A-Za-z0-9_.\-]{1,64}"
_DESCRIPTION_MAX = 256
_MAX_MAX = 10**6
_INTERVAL_MAX = 86400


def rate_limit_resource(rate_limit: RateLimit, base: str) -> dict[str, Any]:
    url = f"{base}/v2/Services/{rate_limit.service_sid}/RateLimits/{rate_limit.sid}"
    return {
        "sid": rate_limit.sid,
        "service_sid": rate_limit.service_sid,
        "account_sid": rate_limit.account_sid,
        "unique_name": rate_limit.unique_name,
        "description": rate_limit.description,
        "date_created": tw.tw_date(rate_limit.date_created),
        "date_updated": tw.tw_date(rate_limit.date_updated),
        "url": url,
        "links": {"buckets": f"{url}/Buckets"},
    }


def bucket_resource(bucket: Bucket, base: str) -> dict[str, Any]:
    return {
        "sid": bucket.sid,
        "rate_limit_sid": bucket.rate_limit_sid,
        "service_sid": bucket.service_sid,
        "account_sid": bucket.account_sid,
        "max": bucket.max,
        "interval": bucket.interval,
        "date_created": tw.tw_date(bucket.date_created),
        "date_updated": tw.tw_date(bucket.date_updated),
        "url": (
            f"{base}/v2/Services/{bucket.service_sid}/RateLimits/{bucket.rate_limit_sid}"
            f"/Buckets/{bucket.sid}"
        ),
    }


async def _rate_limit_for(request: web.Request) -> tuple[Services, Service, RateLimit]:
    services, service = await service_for(request)
    sid = request.match_info["rate_limit_sid"]
    rate_limit = await ratelimits.get_rate_limit(services.redis, service.sid, sid)
    if rate_limit is None:
        raise errors.NotFound(sid)
    return services, service, rate_limit


async def _bucket_for(request: web.Request) -> tuple[Services, Bucket]:
    services, _, rate_limit = await _rate_limit_for(request)
    sid = request.match_info["sid"]
    bucket = await ratelimits.get_bucket(services.redis, rate_limit.sid, sid)
    if bucket is None:
        raise errors.NotFound(sid)
    return services, bucket


# ---- RateLimits ---------------------------------------------------------------------------------


async def create_rate_limit(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    form = await read_form(request)
    unique_name = form.text("UniqueName", required=True, max_len=64, pattern=_UNIQUE_NAME)
    description = form.text("Description", max_len=_DESCRIPTION_MAX)
    assert unique_name is not None
    now = utcnow()
    rate_limit = RateLimit(
        sid=new_sid("RK"),
        service_sid=service.sid,
        account_sid=service.account_sid,
        unique_name=unique_name,
        description=description,
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    created_ms = int(now.timestamp() * 1000)
    if not await ratelimits.create_rate_limit(services.redis, rate_limit, created_ms):
        raise tw.TwilioError(400, 60200, "Invalid parameter: UniqueName (already in use)")
    return web.json_response(rate_limit_resource(rate_limit, base_url(request)), status=201)


async def list_rate_limits(request: web.Request) -> web.Response:
    services, service = await service_for(request)
    fetch = partial(ratelimits.list_rate_limits, services.redis, service.sid)
    return await page_response(request, "rate_limits", fetch, rate_limit_resource)


async def fetch_rate_limit(request: web.Request) -> web.Response:
    _, _, rate_limit = await _rate_limit_for(request)
    return web.json_response(rate_limit_resource(rate_limit, base_url(request)))


async def update_rate_limit(request: web.Request) -> web.Response:
    services, _, rate_limit = await _rate_limit_for(request)
    form = await read_form(request)
    description = form.text("Description", max_len=_DESCRIPTION_MAX)
    if description is not None:
        rate_limit.description = description
    rate_limit.date_updated = iso_ms(utcnow())
    if not await ratelimits.update_rate_limit(services.redis, rate_limit):
        raise errors.NotFound(rate_limit.sid)
    return web.json_response(rate_limit_resource(rate_limit, base_url(request)))


async def delete_rate_limit(request: web.Request) -> web.Response:
    services, _, rate_limit = await _rate_limit_for(request)
    await ratelimits.delete_rate_limit(services.redis, rate_limit)
    return web.Response(status=204)


# ---- Buckets ------------------------------------------------------------------------------------


async def create_bucket(request: web.Request) -> web.Response:
    services, _, rate_limit = await _rate_limit_for(request)
    form = await read_form(request)
    max_ = form.integer("Max", 1, _MAX_MAX)
    if max_ is None:
        raise invalid("Max")
    interval = form.integer("Interval", 1, _INTERVAL_MAX)
    if interval is None:
        raise invalid("Interval")
    now = utcnow()
    bucket = Bucket(
        sid=new_sid("BL"),
        rate_limit_sid=rate_limit.sid,
        service_sid=rate_limit.service_sid,
        account_sid=rate_limit.account_sid,
        max=max_,
        interval=interval,
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    outcome = await ratelimits.create_bucket(services.redis, bucket, int(now.timestamp() * 1000))
    if outcome == "full":
        raise tw.TwilioError(400, 60210, "Max buckets per rate limit reached")
    if outcome == "gone":
        raise errors.NotFound(rate_limit.sid)
    return web.json_response(bucket_resource(bucket, base_url(request)), status=201)


async def list_buckets(request: web.Request) -> web.Response:
    services, _, rate_limit = await _rate_limit_for(request)
    fetch = partial(ratelimits.list_buckets, services.redis, rate_limit.sid)
    return await page_response(request, "buckets", fetch, bucket_resource)


async def fetch_bucket(request: web.Request) -> web.Response:
    _, bucket = await _bucket_for(request)
    return web.json_response(bucket_resource(bucket, base_url(request)))


async def update_bucket(request: web.Request) -> web.Response:
    services, bucket = await _bucket_for(request)
    form = await read_form(request)
    max_ = form.integer("Max", 1, _MAX_MAX)
    interval = form.integer("Interval", 1, _INTERVAL_MAX)
    if max_ is not None:
        bucket.max = max_
    if interval is not None:
        bucket.interval = interval
    bucket.date_updated = iso_ms(utcnow())
    if not await ratelimits.update_bucket(services.redis, bucket):
        raise errors.NotFound(bucket.sid)
    return web.json_response(bucket_resource(bucket, base_url(request)))


async def delete_bucket(request: web.Request) -> web.Response:
    services, bucket = await _bucket_for(request)
    await ratelimits.delete_bucket(services.redis, bucket)
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    r = app.router
    rate_limits = "/v2/Services/{service_sid}/RateLimits"
    one = rate_limits + "/{rate_limit_sid}"
    buckets = one + "/Buckets"
    r.add_get(rate_limits, list_rate_limits)
    r.add_post(rate_limits, create_rate_limit)
    r.add_get(one, fetch_rate_limit)
    r.add_post(one, update_rate_limit)
    r.add_delete(one, delete_rate_limit)
    r.add_get(buckets, list_buckets)
    r.add_post(buckets, create_bucket)
    r.add_get(buckets + "/{sid}", fetch_bucket)
    r.add_post(buckets + "/{sid}", update_bucket)
    r.add_delete(buckets + "/{sid}", delete_bucket)
