"""Twilio-dialect Services (VA…): a tenant's verification configuration, stored as JSON."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from orchestrator import constants

__all__ = ["Service", "delete_service", "get_service", "list_services", "save_service"]


class Service(BaseModel):
    sid: str
    account_sid: str
    friendly_name: str
    code_length: int = 6
    lookup_enabled: bool = False
    skip_sms_to_landlines: bool = False
    dtmf_input_required: bool = False
    tts_name: str | None = None
    psd2_enabled: bool = False
    do_not_share_warning_enabled: bool = False
    custom_code_enabled: bool = False
    verify_event_subscription_enabled: bool = False
    default_template_sid: str | None = None
    # SMS, WhatsApp and voice send no code to a number whose SIM changed within this many hours
    # (`verify-orchestrator services update VA… --sim-swap-max-age HOURS`); None: no check
    sim_swap_max_age_hours: int | None = None
    # the workflows file's workflow `Channel=auto` follows (`services update VA… --workflow NAME`);
    # None: auto is silent auth when the device IP is covered, then SMS
    workflow: str | None = None
    push: dict[str, Any] = Field(
        default_factory=lambda: {
            "include_date": False,
            "apn_credential_sid": None,
            "fcm_credential_sid": None,
        }
    )
    totp: dict[str, Any] = Field(
        default_factory=lambda: {
            "issuer": None,
            "time_step": None,
            "code_length": None,
            "skew": None,
        }
    )
    whatsapp: dict[str, Any] = Field(
        default_factory=lambda: {"msg_service_sid": None, "from": None}
    )
    passkeys: dict[str, Any] = Field(
        default_factory=lambda: {
            "relying_party": {"id": None, "name": None, "origins": []},
            "authenticator_attachment": None,
            "discoverable_credentials": None,
            "user_verification": None,
        }
    )
    date_created: str
    date_updated: str


async def save_service(redis: Redis, service: Service, created_ms: int | None = None) -> None:
    await redis.set(constants.SERVICE_PREFIX + service.sid, service.model_dump_json())
    if created_ms is not None:
        key = constants.ACCOUNT_SERVICES_PREFIX + service.account_sid
        await redis.zadd(key, {service.sid: created_ms})


async def get_service(redis: Redis, account_sid: str, sid: str) -> Service | None:
    if not sid.startswith("VA") or len(sid) != 34:
        return None
    raw = await redis.get(constants.SERVICE_PREFIX + sid)
    if raw is None:
        return None
    service = Service.model_validate_json(raw)
    return service if service.account_sid == account_sid else None


async def list_services(
    redis: Redis, account_sid: str, offset: int, count: int
) -> tuple[list[Service], int]:
    key = constants.ACCOUNT_SERVICES_PREFIX + account_sid
    total = int(await redis.zcard(key))
    sids = await redis.zrange(key, offset, offset + count - 1)
    found = [await get_service(redis, account_sid, s.decode()) for s in sids]
    return [s for s in found if s is not None], total


async def delete_service(redis: Redis, service: Service) -> None:
    await redis.delete(constants.SERVICE_PREFIX + service.sid)
    await redis.zrem(constants.ACCOUNT_SERVICES_PREFIX + service.account_sid, service.sid)
