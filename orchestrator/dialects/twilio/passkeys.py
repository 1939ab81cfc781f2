"""Twilio Verify Passkeys: register (options → VerifyFactor) and authenticate (Challenges →
ApproveChallenge), JSON bodies with snake_case keys, on the Entity/Factor/Challenge store.

The four operations are plain functions of (services, service, body, base URL) so the sandbox demo
page (`sandbox/passkeys_demo`) runs exactly the code the API runs. The WebAuthn responses carry no factor
or challenge SID: both are found through the challenge inside `clientDataJSON`, which this module
indexes when it issues options (registration: 10 minutes; authentication: 5 minutes).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from orchestrator import constants
from orchestrator.dialects.twilio.factors.common import challenge_resource, factor_resource
from orchestrator.dialects.twilio.wire import TwilioError
from orchestrator.factors import events, lifecycle
from orchestrator.factors import passkeys as pk
from orchestrator.factors.models import Challenge, Entity, Factor
from orchestrator.factors.store import FactorStore, StaleWrite
from orchestrator.services import Services
from orchestrator.tenants.accounts import new_sid
from orchestrator.tenants.verify_services import Service
from orchestrator.timefmt import iso_ms, utcnow

__all__ = [
    "Operation",
    "approve_challenge",
    "challenge_resource",
    "create_challenge",
    "create_factor",
    "factor_resource",
    "verify_factor",
]

# the Entities' rule (factors/common.py): 8-64 letters, digits and dashes, refused with 60306 alike
_IDENTITY = re.compile(r"[A-Za-z0-9-]{8,64}")
_FACTOR_SID = re.compile(r"YF[0-9a-fA-F]{32}")
_MAX_PASSKEYS_PER_ENTITY = 20
_MAX_ATTEMPTS = 5
# an authentication challenge's index outlives the challenge, so a late answer reads "expired"
_CHALLENGE_INDEX_TTL = 24 * 3600


# ---- errors and body fields ---------------------------------------------------------------------


def _invalid(name: str) -> TwilioError:
    return TwilioError(400, 60200, f"Invalid parameter: {name}")


def _bad_identity() -> TwilioError:
    return TwilioError(
        400, 60306, "Invalid Identity: 8 to 64 characters of letters, digits and dashes"
    )


def _not_found(what: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {what} was not found")


def _factor_failed(reason: str) -> TwilioError:
    return TwilioError(403, 60311, f"Factor verification failed: {reason}")


def _challenge_failed(reason: str) -> TwilioError:
    return TwilioError(403, 60324, f"Challenge verification failed: {reason}")


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid("body")
    return body


def _text(
    body: dict[str, Any], name: str, *, required: bool = False, max_len: int = 64
) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise _invalid(name)
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise _invalid(name)
    return value


def _identity(body: dict[str, Any], *, required: bool) -> str | None:
    value = body.get("identity")
    if value is None or value == "":
        if required:
            raise _bad_identity()
        return None
    if not isinstance(value, str) or not _IDENTITY.fullmatch(value):
        raise _bad_identity()
    return value


def _webauthn_credential(body: dict[str, Any]) -> tuple[str, str]:
    """(challenge in clientDataJSON, credential id): the keys every WebAuthn answer is found by."""
    if body.get("type") is None:
        body["type"] = "public-key"  # the SDK sends null for what it was not given
    if body["type"] != "public-key":
        raise _invalid("type")
    attachment = body.get("authenticatorAttachment")
    if attachment is not None and attachment not in ("platform", "cross-platform"):
        raise _invalid("authenticatorAttachment")
    if not isinstance(body.get("response"), dict):
        raise _invalid("response")
    try:
        challenge = pk.client_challenge(body)
    except ValueError:
        raise _invalid("response.clientDataJSON") from None
    try:
        credential_id = pk.credential_id_of(body)
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    return challenge, credential_id


def _key(prefix: str, service_sid: str, value: str) -> str:
    return f"{prefix}{service_sid}:{value}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# ---- resources ----------------------------------------------------------------------------------


# factor_resource and challenge_resource are the Entities API's own (one shape per resource)


# ---- registration -------------------------------------------------------------------------------


async def _entity(store: FactorStore, service: Service, identity: str, now: datetime) -> Entity:
    """The identity's entity, created on first use (creating a factor creates its entity)."""
    entity = await store.get_entity(service.sid, identity)
    if entity is not None:
        return entity
    entity = Entity(
        sid=new_sid("YE"),
        identity=identity,
        account_sid=service.account_sid,
        service_sid=service.sid,
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    if await store.add_entity(entity, _ms(now)):
        return entity
    found = await store.get_entity(service.sid, identity)  # created concurrently
    if found is None:
        raise TwilioError(409, 20409, "Conflict")
    return found


def _passkey(factor: Factor | None, service: Service) -> Factor | None:
    if factor is None or factor.service_sid != service.sid or factor.factor_type != "passkeys":
        return None
    return factor


async def create_factor(
    services: Services, service: Service, body: Any, base: str
) -> dict[str, Any]:
    """POST /Passkeys/Factors: an unverified factor and its creation options."""
    body = _object(body)
    friendly_name = _text(body, "friendly_name", required=True)
    identity = _identity(body, required=True)
    assert friendly_name is not None and identity is not None
    try:
        config = pk.resolve_config(
            body.get("config"),
            service.passkeys,
            request_origin=base,
            default_name=service.friendly_name,
        )
    except pk.ConfigError as exc:
        raise _invalid(exc.param) from None

    store = FactorStore(services.redis)
    now = utcnow()
    entity = await _entity(store, service, identity, now)
    existing = [
        f for f in await store.factors_of(service.sid, identity) if f.factor_type == "passkeys"
    ]
    live: list[Factor] = []
    for f in existing:
        # a registration nobody finished is useless once its options expired: drop it
        if f.status == "unverified" and int(f.binding.get("expires", 0)) < now.timestamp():
            await store.delete_factor(f)
            await events.emit(services.redis, "factor.deleted", f)
        else:
            live.append(f)
    if len(live) >= _MAX_PASSKEYS_PER_ENTITY:
        raise TwilioError(400, 60315, "Maximum number of passkeys factors reached for this entity")

    factor = Factor(
        sid=new_sid("YF"),
        account_sid=service.account_sid,
        service_sid=service.sid,
        entity_sid=entity.sid,
        identity=identity,
        friendly_name=friendly_name,
        factor_type="passkeys",
        config=config,
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
    )
    # the user handle is the entity SID, as Twilio's: an opaque id, never the identity itself
    user_handle = entity.sid.encode()
    exclude = [c for c in (pk.Credential.of(f) for f in live) if c is not None]
    challenge, options = pk.registration_options(factor, user_handle, exclude)
    factor.binding = {
        "challenge": challenge,
        "user_handle": pk.b64url(user_handle),
        "expires": int(now.timestamp()) + pk.REGISTRATION_TTL_SECONDS,
    }
    await store.add_factor(factor, _ms(now))
    await services.redis.set(
        _key(constants.PASSKEY_REGISTRATION_PREFIX, service.sid, challenge),
        factor.sid,
        ex=pk.REGISTRATION_TTL_SECONDS,
    )
    await events.emit(services.redis, "factor.created", factor)
    resource = factor_resource(factor, base)
    resource["binding"] = None
    resource["options"] = {"publicKey": options}
    return resource


async def _count_attempt(store: FactorStore, record: Factor | Challenge) -> None:
    record.attempts += 1
    with contextlib.suppress(StaleWrite):
        if isinstance(record, Factor):
            await store.update_factor(record)
        else:
            await store.update_challenge(record)


async def _claim_credential(
    services: Services, store: FactorStore, service: Service, credential_id: str, factor_sid: str
) -> str:
    """Index the credential id to its factor; refused if a live factor already holds it."""
    key = _key(constants.PASSKEY_CREDENTIAL_PREFIX, service.sid, credential_id)
    if await services.redis.set(key, factor_sid, nx=True):
        return key
    holder_sid = await services.redis.get(key)
    holder = await store.get_factor(holder_sid.decode()) if holder_sid else None
    if holder is not None and holder.binding.get("credential_id") == credential_id:
        raise _factor_failed("the credential is already registered")
    await services.redis.set(key, factor_sid)  # a stale entry of a deleted factor
    return key


async def verify_factor(
    services: Services, service: Service, body: Any, base: str
) -> dict[str, Any]:
    """POST /Passkeys/VerifyFactor: check the attestation, keep the credential, mark verified."""
    body = _object(body)
    challenge, _ = _webauthn_credential(body)
    response = body["response"]
    if not isinstance(response.get("attestationObject"), str):
        raise _invalid("response.attestationObject")
    store = FactorStore(services.redis)
    registration = _key(constants.PASSKEY_REGISTRATION_PREFIX, service.sid, challenge)
    factor_sid = await services.redis.get(registration)
    factor = _passkey(await store.get_factor(factor_sid.decode()) if factor_sid else None, service)
    if factor is None or factor.status != "unverified":
        raise _factor_failed("unknown, used or expired registration challenge")
    if factor.attempts >= _MAX_ATTEMPTS:
        raise TwilioError(429, 60310, "Max factor verification attempts reached")
    try:
        binding = pk.verify_registration(factor, body)
    except pk.CeremonyFailed as exc:
        await _count_attempt(store, factor)
        raise _factor_failed(str(exc)) from None
    credential_key = await _claim_credential(
        services, store, service, binding["credential_id"], factor.sid
    )
    factor.status = "verified"
    factor.binding = binding
    factor.date_updated = iso_ms(utcnow())
    event = await events.prepare(services.redis, "factor.verified", factor)
    try:
        await store.update_factor(factor, event)
    except StaleWrite:
        # a concurrent verification of this very attestation may have won: keep its index
        fresh = await store.get_factor(factor.sid)
        if fresh is None or fresh.binding.get("credential_id") != binding["credential_id"]:
            await services.redis.delete(credential_key)
        raise _factor_failed("the factor changed during verification") from None
    await services.redis.delete(registration)
    return factor_resource(factor, base)


# ---- authentication -----------------------------------------------------------------------------


async def create_challenge(
    services: Services, service: Service, body: Any, base: str
) -> dict[str, Any]:
    """POST /Passkeys/Challenges: request options for one factor, an identity, or anyone
    (discoverable credentials, when neither is given)."""
    body = {} if body is None else _object(body)
    identity = _identity(body, required=False)
    factor_sid = _text(body, "factor_sid", max_len=34)
    if factor_sid is not None and not _FACTOR_SID.fullmatch(factor_sid):
        raise _invalid("factor_sid")
    store = FactorStore(services.redis)
    entity_sid, bound_identity, bound_factor = "", "", ""
    if factor_sid is not None:
        factor = _passkey(await store.get_factor(factor_sid), service)
        if factor is None or (identity is not None and factor.identity != identity):
            raise _not_found(factor_sid)
        candidates = [factor]
        entity_sid, bound_identity, bound_factor = factor.entity_sid, factor.identity, factor.sid
    elif identity is not None:
        entity = await store.get_entity(service.sid, identity)
        if entity is None:
            raise _not_found(identity)
        candidates = [
            f
            for f in await store.factors_of(service.sid, identity)
            if f.factor_type == "passkeys" and f.status == "verified"
        ]
        entity_sid, bound_identity = entity.sid, identity
    else:
        candidates = []

    if factor_sid is not None or identity is not None:
        verified = [f for f in candidates if f.status == "verified"]
        if not verified:
            raise TwilioError(403, 60318, "Factor is unverified")
        # one ceremony has one RP ID: the newest factor's, with every credential under it
        newest = verified[-1]
        rp_id = newest.config["relying_party"]["id"]
        allow = [
            c
            for f, c in ((f, pk.Credential.of(f)) for f in verified)
            if c is not None and f.config["relying_party"]["id"] == rp_id
        ]
        user_verification = str(newest.config["user_verification"])
    else:
        try:
            config = pk.resolve_config(
                None, service.passkeys, request_origin=base, default_name=service.friendly_name
            )
        except pk.ConfigError as exc:
            raise _invalid(exc.param.replace("config.", "passkeys.")) from None
        rp_id = config["relying_party"]["id"]
        allow = []
        user_verification = config["user_verification"]

    webauthn_challenge, options = pk.authentication_options(rp_id, allow, user_verification)
    now = utcnow()
    challenge = Challenge(
        sid=new_sid("YC"),
        account_sid=service.account_sid,
        service_sid=service.sid,
        entity_sid=entity_sid,
        identity=bound_identity,
        factor_sid=bound_factor,
        factor_type="passkeys",
        expiration_date=iso_ms(now + timedelta(seconds=pk.CHALLENGE_TTL_SECONDS)),
        date_created=iso_ms(now),
        date_updated=iso_ms(now),
        webauthn_challenge=webauthn_challenge,
    )
    if bound_identity:
        await store.add_challenge(challenge, _ms(now))
    else:
        # nobody's yet: kept (with a TTL) outside every entity's index until it is answered
        await services.redis.set(
            store.challenge_key(challenge.sid),
            challenge.model_dump_json(),
            ex=_CHALLENGE_INDEX_TTL,
        )
    await services.redis.set(
        _key(constants.PASSKEY_CHALLENGE_PREFIX, service.sid, webauthn_challenge),
        challenge.sid,
        ex=_CHALLENGE_INDEX_TTL,
    )
    # the workers mark it expired on time (and send challenge.expired); answers check it too
    await lifecycle.schedule_expiry(services.redis, challenge)
    resource = challenge_resource(challenge, base)
    resource["options"] = {"publicKey": options}
    return resource


async def _respondable(store: FactorStore, challenge: Challenge, now: datetime) -> Challenge:
    """Refuse a challenge that is answered, expired (marking it so) or out of attempts."""
    challenge = await lifecycle.expire_if_due(store, challenge, now)
    if challenge.status == "expired":
        raise TwilioError(403, 60323, "Challenge expired")
    if challenge.status != "pending":
        raise TwilioError(403, 60322, "Challenge already responded")
    if challenge.attempts >= _MAX_ATTEMPTS:
        raise TwilioError(429, 60308, "Max challenge verification attempts reached")
    return challenge


async def _approve(
    store: FactorStore, challenge: Challenge, factor: Factor, now: datetime
) -> Challenge:
    """Mark the challenge approved by `factor`, once: a concurrent write (a wrong answer being
    counted) is retried; a concurrent approval or expiry wins and this answer is refused."""
    for _ in range(lifecycle.MAX_CAS_RETRIES):
        challenge.status = "approved"
        challenge.entity_sid = factor.entity_sid
        challenge.identity = factor.identity
        challenge.factor_sid = factor.sid
        challenge.date_responded = challenge.date_updated = iso_ms(now)
        event = await events.prepare(store.redis, "challenge.approved", factor, challenge)
        try:
            await store.update_challenge(challenge, event)
            return challenge
        except StaleWrite:
            fresh = await store.get_challenge(challenge.sid)
            if fresh is None:
                break
            challenge = await _respondable(store, fresh, now)
    raise TwilioError(403, 60322, "Challenge already responded")


async def _bump_sign_count(store: FactorStore, factor: Factor, count: int, now: datetime) -> None:
    """Record the authenticator's new counter (retrying over concurrent writes; never lowered)."""
    for _ in range(5):
        factor.binding["sign_count"] = max(int(factor.binding.get("sign_count", 0)), count)
        factor.binding["last_used"] = iso_ms(now)
        try:
            await store.update_factor(factor)
            return
        except StaleWrite:
            fresh = await store.get_factor(factor.sid)
            if fresh is None:
                return
            factor = fresh


async def approve_challenge(
    services: Services, service: Service, body: Any, base: str
) -> dict[str, Any]:
    """POST /Passkeys/ApproveChallenge: verify the assertion; approve the challenge once."""
    body = _object(body)
    webauthn_challenge, credential_id = _webauthn_credential(body)
    response = body["response"]
    for field in ("authenticatorData", "signature"):
        if not isinstance(response.get(field), str):
            raise _invalid(f"response.{field}")
    store = FactorStore(services.redis)
    index = _key(constants.PASSKEY_CHALLENGE_PREFIX, service.sid, webauthn_challenge)
    challenge_sid = await services.redis.get(index)
    challenge = await store.get_challenge(challenge_sid.decode()) if challenge_sid else None
    if (
        challenge is None
        or challenge.service_sid != service.sid
        or challenge.factor_type != "passkeys"
        or challenge.webauthn_challenge != webauthn_challenge
    ):
        raise TwilioError(404, 60391, "Challenge not found")
    now = utcnow()
    challenge = await _respondable(store, challenge, now)

    owner_sid = await services.redis.get(
        _key(constants.PASSKEY_CREDENTIAL_PREFIX, service.sid, credential_id)
    )
    factor = _passkey(await store.get_factor(owner_sid.decode()) if owner_sid else None, service)
    stored = pk.Credential.of(factor) if factor is not None else None
    if (
        factor is None
        or stored is None
        or stored.credential_id != credential_id
        or (challenge.factor_sid and factor.sid != challenge.factor_sid)
        or (challenge.identity and factor.identity != challenge.identity)
    ):
        await _count_attempt(store, challenge)
        raise _challenge_failed("unknown credential")
    try:
        new_count = pk.verify_assertion(factor, body, webauthn_challenge, stored)
    except pk.CeremonyFailed as exc:
        await _count_attempt(store, challenge)
        raise _challenge_failed(str(exc)) from None

    discoverable = not challenge.identity
    challenge = await _approve(store, challenge, factor, now)
    if discoverable:
        # answered: it now belongs to the entity, listed and deleted with it
        key = store.challenge_key(challenge.sid)
        await services.redis.persist(key)
        await services.redis.zadd(
            store.challenges_index(service.sid, factor.identity),
            {challenge.sid: _ms(lifecycle.parse_time(challenge.date_created))},
        )
    await lifecycle.cancel_expiry(services.redis, challenge.sid)
    await _bump_sign_count(store, factor, new_count, now)
    return challenge_resource(challenge, base)


Operation = Callable[[Services, Service, Any, str], Awaitable[dict[str, Any]]]
