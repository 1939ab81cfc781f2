"""Passkeys (WebAuthn) factors over the Twilio dialect, against the real stack.

A software authenticator (an EC P-256 key, "none" attestation objects in CBOR, ES256 assertions)
plays the browser + authenticator, so every check the server makes can be exercised on purpose:
origin, relying party, challenge, signature, sign count, user handle and expiry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import cbor2
import pytest
import redis
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.rest.verify.v2.service.approve_challenge import ApproveChallengeList
from twilio.rest.verify.v2.service.new_challenge import NewChallengeContext
from twilio.rest.verify.v2.service.new_factor import NewFactorList
from twilio.rest.verify.v2.service.new_verify_factor import NewVerifyFactorList

from tests.support.processes import Stack, wait_until
from tests.support.receiver import WebhookReceiver
from tests.support.twilio import basic_request, sdk_client

RP_ID = "example.com"
ORIGIN = "https://login.example.com"

# authenticator data flags
UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# ---- a software authenticator --------------------------------------------------------------------


@dataclass
class SoftAuthenticator:
    """One discoverable ES256 credential, made and used the way a browser + authenticator do."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    sign_count: int = 0
    user_handle: bytes | None = None
    rp_id: str | None = None

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    @staticmethod
    def client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def create(
        self, public_key: dict[str, Any], *, origin: str = ORIGIN, rp_id: str | None = None
    ) -> dict[str, Any]:
        """navigator.credentials.create(): a "none" attestation for the options' challenge."""
        self.rp_id = rp_id or public_key["rp"]["id"]
        self.user_handle = unb64url(public_key["user"]["id"])
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([UP | UV | AT])
            + struct.pack(">I", self.sign_count)
            + bytes(16)  # AAGUID
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self.cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self.client_data("webauthn.create", public_key["challenge"], origin)
        return self.credential(
            {
                "attestationObject": b64url(attestation),
                "clientDataJSON": b64url(client_data),
                "transports": ["internal"],
            }
        )

    def get(
        self,
        public_key: dict[str, Any],
        *,
        origin: str = ORIGIN,
        count: int | None = None,
        flags: int = UP | UV,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.get(): an assertion over the options' challenge."""
        assert self.rp_id is not None
        if count is None:
            self.sign_count += 1
            count = self.sign_count
        auth_data = (
            hashlib.sha256(public_key.get("rpId", self.rp_id).encode()).digest()
            + bytes([flags])
            + struct.pack(">I", count)
        )
        client_data = self.client_data("webauthn.get", public_key["challenge"], origin)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        handle = user_handle if user_handle is not None else self.user_handle
        return self.credential(
            {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(handle) if handle is not None else None,
            }
        )

    def credential(self, response: dict[str, Any]) -> dict[str, Any]:
        """This authenticator's PublicKeyCredential around `response`, as a browser sends it."""
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "authenticatorAttachment": "platform",
            "type": "public-key",
            "response": response,
        }


# ---- a tenant and its calls ----------------------------------------------------------------------


@dataclass
class Tenant:
    stack: Stack
    account_sid: str
    auth_token: str
    service_sid: str = ""

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return basic_request(self.stack, (self.account_sid, self.auth_token), method, path, **kw)

    def service(self, **params: str) -> dict[str, Any]:
        resp = self.call("POST", "/v2/Services", data={"FriendlyName": "Passkeys", **params})
        assert resp.status_code == 201, resp.text
        body: dict[str, Any] = resp.json()
        self.service_sid = body["sid"]
        return body

    def passkeys(self, operation: str, body: Any) -> requests.Response:
        return self.call("POST", f"/v2/Services/{self.service_sid}/Passkeys/{operation}", json=body)

    # the four steps, each asserting its success status
    def create_factor(self, identity: str, **extra: Any) -> dict[str, Any]:
        body = {"friendly_name": "Laptop", "identity": identity, **extra}
        return self._succeeded("Factors", body, 201)

    def verify_factor(self, attestation: dict[str, Any]) -> dict[str, Any]:
        return self._succeeded("VerifyFactor", attestation, 200)

    def challenge(self, **body: Any) -> dict[str, Any]:
        return self._succeeded("Challenges", body, 201)

    def approve(self, assertion: dict[str, Any]) -> dict[str, Any]:
        return self._succeeded("ApproveChallenge", assertion, 200)

    def _succeeded(self, operation: str, body: Any, status: int) -> dict[str, Any]:
        resp = self.passkeys(operation, body)
        assert resp.status_code == status, resp.text
        return dict(resp.json())

    def enrol(self, identity: str, authenticator: SoftAuthenticator, **extra: Any) -> str:
        factor = self.create_factor(identity, **extra)
        verified = self.verify_factor(authenticator.create(factor["options"]["publicKey"]))
        assert verified["status"] == "verified"
        return str(factor["sid"])


def assert_error(resp: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["code"] == code and body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert set(body) == {"code", "message", "more_info", "status"}
    return body


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    data = stack.cli("accounts", "create", "--name", "passkeys")
    assert isinstance(data, dict)
    t = Tenant(stack, str(data["account_sid"]), str(data["auth_token"]))
    t.service(
        **{
            "Passkeys.RelyingParty.Id": RP_ID,
            "Passkeys.RelyingParty.Name": "Example",
            "Passkeys.RelyingParty.Origins": f"https://{RP_ID},{ORIGIN}",
            "Passkeys.AuthenticatorAttachment": "platform",
            "Passkeys.DiscoverableCredentials": "preferred",
            "Passkeys.UserVerification": "preferred",
        }
    )
    return t


def identity() -> str:
    return "user-" + uuid.uuid4().hex[:16]


# ---- service configuration -----------------------------------------------------------------------


def test_service_passkeys_config_is_set_shown_and_cleared(tenant: Tenant) -> None:
    resp = tenant.call("GET", f"/v2/Services/{tenant.service_sid}")
    assert resp.json()["passkeys"] == {
        "relying_party": {
            "id": RP_ID,
            "name": "Example",
            "origins": [f"https://{RP_ID}", ORIGIN],
        },
        "authenticator_attachment": "platform",
        "discoverable_credentials": "preferred",
        "user_verification": "preferred",
    }
    resp = tenant.call(
        "POST",
        f"/v2/Services/{tenant.service_sid}",
        data={"Passkeys.UserVerification": "required", "Passkeys.AuthenticatorAttachment": ""},
    )
    assert resp.status_code == 200, resp.text
    passkeys = resp.json()["passkeys"]
    assert passkeys["user_verification"] == "required"
    assert passkeys["authenticator_attachment"] is None
    assert passkeys["relying_party"]["id"] == RP_ID

    for param, value in [
        ("Passkeys.AuthenticatorAttachment", "usb"),
        ("Passkeys.UserVerification", "always"),
        ("Passkeys.DiscoverableCredentials", "yes"),
        ("Passkeys.RelyingParty.Id", "https://example.com"),
        ("Passkeys.RelyingParty.Origins", "example.com"),
        ("Passkeys.RelyingParty.Origins", "https://example.com/login"),
    ]:
        body = assert_error(
            tenant.call("POST", f"/v2/Services/{tenant.service_sid}", data={param: value}),
            400,
            60200,
        )
        assert body["message"] == f"Invalid parameter: {param}"


# ---- the whole ceremony --------------------------------------------------------------------------


def test_register_verify_challenge_approve(tenant: Tenant, db: redis.Redis) -> None:
    who = identity()
    auth = SoftAuthenticator()
    factor = tenant.create_factor(who)
    assert factor["sid"].startswith("YF") and len(factor["sid"]) == 34
    assert factor["entity_sid"].startswith("YE")
    assert factor["identity"] == who
    assert factor["factor_type"] == "passkeys"
    assert factor["status"] == "unverified"
    assert factor["binding"] is None
    assert factor["config"] == {
        "relying_party": {"id": RP_ID, "name": "Example", "origins": [f"https://{RP_ID}", ORIGIN]},
        "authenticator_attachment": "platform",
        "discoverable_credentials": "preferred",
        "user_verification": "preferred",
    }
    assert factor["url"].endswith(
        f"/v2/Services/{tenant.service_sid}/Entities/{who}/Factors/{factor['sid']}"
    )
    options = factor["options"]["publicKey"]
    assert options["rp"] == {"id": RP_ID, "name": "Example"}
    # the user handle is the entity SID (never the identity), as Twilio's
    assert unb64url(options["user"]["id"]) == factor["entity_sid"].encode()
    assert options["user"]["name"] == options["user"]["displayName"] == "Laptop"
    assert len(unb64url(options["challenge"])) == 32
    assert {"type": "public-key", "alg": -7} in options["pubKeyCredParams"]
    assert options["timeout"] == 600000
    assert options["excludeCredentials"] == []
    assert options["authenticatorSelection"] == {
        "authenticatorAttachment": "platform",
        "residentKey": "preferred",
        "requireResidentKey": False,
        "userVerification": "preferred",
    }
    assert options["attestation"] == "none"

    verified = tenant.verify_factor(auth.create(options))
    assert verified["sid"] == factor["sid"]
    assert verified["status"] == "verified"
    assert "binding" not in verified and "options" not in verified
    stored = json.loads(db.get(f"vo:factor:{factor['sid']}") or b"{}")
    assert stored["binding"]["credential_id"] == b64url(auth.credential_id)
    assert stored["binding"]["sign_count"] == 0
    assert stored["binding"]["transports"] == ["internal"]
    # the entity came into being with the factor, holding the opaque identity only
    entity = json.loads(db.get(f"vo:entity:{tenant.service_sid}:{who}") or b"{}")
    assert entity["identity"] == who and entity["sid"] == factor["entity_sid"]

    challenge = tenant.challenge(identity=who)
    assert challenge["sid"].startswith("YC") and len(challenge["sid"]) == 34
    assert challenge["status"] == "pending"
    assert challenge["factor_type"] == "passkeys"
    assert challenge["identity"] == who and challenge["entity_sid"] == factor["entity_sid"]
    created = datetime.strptime(challenge["date_created"], "%Y-%m-%dT%H:%M:%SZ")
    expires = datetime.strptime(challenge["expiration_date"], "%Y-%m-%dT%H:%M:%SZ")
    assert timedelta(minutes=4, seconds=58) <= expires - created <= timedelta(minutes=5, seconds=1)
    request_options = challenge["options"]["publicKey"]
    assert request_options["rpId"] == RP_ID
    assert request_options["userVerification"] == "preferred"
    assert request_options["allowCredentials"] == [
        {"id": b64url(auth.credential_id), "type": "public-key", "transports": ["internal"]}
    ]

    approved = tenant.approve(auth.get(request_options))
    assert approved["sid"] == challenge["sid"]
    assert approved["status"] == "approved"
    assert approved["factor_sid"] == factor["sid"]
    assert approved["date_responded"] is not None
    stored = json.loads(db.get(f"vo:factor:{factor['sid']}") or b"{}")
    assert stored["binding"]["sign_count"] == 1

    # a second passkey for the entity: the first is excluded from its creation options
    second = tenant.create_factor(who)
    assert second["options"]["publicKey"]["excludeCredentials"] == [
        {"id": b64url(auth.credential_id), "type": "public-key", "transports": ["internal"]}
    ]


def test_the_official_sdk_drives_the_four_endpoints(tenant: Tenant) -> None:
    client = sdk_client(tenant.stack, tenant.account_sid, tenant.auth_token)
    service = client.verify.v2.services(tenant.service_sid)
    who = identity()
    auth = SoftAuthenticator()

    factor = service.new_factors.create(
        NewFactorList.CreateNewPasskeysFactorRequest({"friendly_name": "Phone", "identity": who})
    )
    assert factor.sid.startswith("YF") and factor.status == "unverified"
    assert factor.date_created is not None and factor.date_created.tzinfo is not None
    assert factor.options is not None
    public_key: dict[str, Any] = factor.options["publicKey"]  # type: ignore[assignment]

    verified = service.new_verify_factors.update(
        NewVerifyFactorList.VerifyPasskeysFactorRequest(auth.create(public_key))
    )
    assert verified.status == "verified" and verified.sid == factor.sid

    challenge = service.new_challenge().create(
        NewChallengeContext.CreatePasskeysChallengeRequest({"identity": who})
    )
    assert challenge.status == "pending"
    assert challenge.options is not None
    request_options: dict[str, Any] = challenge.options["publicKey"]  # type: ignore[assignment]

    approved = service.approve_challenge.update(
        ApproveChallengeList.ApprovePasskeysChallengeRequest(auth.get(request_options))
    )
    assert approved.status == "approved" and approved.sid == challenge.sid


# ---- relying party resolution --------------------------------------------------------------------


def test_factor_config_overrides_the_service(tenant: Tenant) -> None:
    who = identity()
    auth = SoftAuthenticator()
    override = {
        "relying_party": {"id": "shop.test", "name": "Shop", "origins": ["https://www.shop.test"]},
        "authenticator_attachment": "any",
        "discoverable_credentials": "required",
        "user_verification": "required",
    }
    factor = tenant.create_factor(who, config=override)
    assert factor["config"] == override
    options = factor["options"]["publicKey"]
    assert options["rp"] == {"id": "shop.test", "name": "Shop"}
    selection = options["authenticatorSelection"]
    assert "authenticatorAttachment" not in selection
    assert selection["residentKey"] == "required" and selection["requireResidentKey"] is True
    assert selection["userVerification"] == "required"

    # the service's origin is not this factor's
    assert_error(tenant.passkeys("VerifyFactor", auth.create(options, origin=ORIGIN)), 403, 60311)
    tenant.verify_factor(auth.create(options, origin="https://www.shop.test"))

    challenge = tenant.challenge(identity=who)
    request_options = challenge["options"]["publicKey"]
    assert request_options["rpId"] == "shop.test"
    assert request_options["userVerification"] == "required"
    # user verification is required: an assertion without the UV flag is refused
    refused = auth.get(request_options, origin="https://www.shop.test", flags=UP)
    assert_error(tenant.passkeys("ApproveChallenge", refused), 403, 60324)
    approved = tenant.approve(auth.get(request_options, origin="https://www.shop.test"))
    assert approved["status"] == "approved"


def test_relying_party_defaults_to_the_request_host(stack: Stack, tenant: Tenant) -> None:
    tenant.service()  # no Passkeys.* parameters
    factor = tenant.create_factor(identity())
    assert factor["config"]["relying_party"] == {
        "id": "127.0.0.1",
        "name": "Passkeys",
        "origins": [stack.url],
    }
    auth = SoftAuthenticator()
    verified = tenant.verify_factor(auth.create(factor["options"]["publicKey"], origin=stack.url))
    assert verified["status"] == "verified"


def test_invalid_relying_party_config_is_400(tenant: Tenant) -> None:
    for config, param in [
        (
            {"relying_party": {"id": "example.com", "origins": ["https://evil.test"]}},
            "config.relying_party.origins",
        ),
        ({"relying_party": {"id": "not a domain"}}, "config.relying_party.id"),
        ({"authenticator_attachment": "usb"}, "config.authenticator_attachment"),
        ({"user_verification": "always"}, "config.user_verification"),
        ({"discoverable_credentials": True}, "config.discoverable_credentials"),
        ("platform", "config"),
    ]:
        body = assert_error(
            tenant.passkeys(
                "Factors", {"friendly_name": "x", "identity": identity(), "config": config}
            ),
            400,
            60200,
        )
        assert body["message"] == f"Invalid parameter: {param}"


def test_an_abandoned_registration_is_dropped_once_its_options_expired(
    tenant: Tenant, db: redis.Redis
) -> None:
    who = identity()
    abandoned = tenant.create_factor(who)
    key = f"vo:factor:{abandoned['sid']}"
    record = json.loads(db.get(key) or b"{}")
    record["binding"]["expires"] = 0  # its ten minutes are over
    db.set(key, json.dumps(record))
    attestation = SoftAuthenticator().create(abandoned["options"]["publicKey"])

    tenant.create_factor(who)
    assert db.get(key) is None
    assert_error(tenant.passkeys("VerifyFactor", attestation), 403, 60311)


# ---- refusals leave the status as it was ---------------------------------------------------------


def test_wrong_origin_is_refused_and_nothing_changes(tenant: Tenant, db: redis.Redis) -> None:
    who = identity()
    auth = SoftAuthenticator()
    factor = tenant.create_factor(who)
    options = factor["options"]["publicKey"]
    for origin in [
        "https://evil.test",
        "http://login.example.com",
        "https://example.com.evil.test",
    ]:
        assert_error(
            tenant.passkeys("VerifyFactor", auth.create(options, origin=origin)), 403, 60311
        )
    # another RP's authenticator data (its RP ID hash) is refused too
    assert_error(
        tenant.passkeys("VerifyFactor", auth.create(options, rp_id="evil.test")), 403, 60311
    )
    stored = json.loads(db.get(f"vo:factor:{factor['sid']}") or b"{}")
    assert stored["status"] == "unverified" and "credential_id" not in stored["binding"]
    # refusals while attempts remain do not spend the registration
    tenant.verify_factor(auth.create(options))

    challenge = tenant.challenge(identity=who)
    request_options = challenge["options"]["publicKey"]
    assert_error(
        tenant.passkeys("ApproveChallenge", auth.get(request_options, origin="https://evil.test")),
        403,
        60324,
    )
    stored = json.loads(db.get(f"vo:challenge:{challenge['sid']}") or b"{}")
    assert stored["status"] == "pending" and stored["attempts"] == 1
    assert tenant.approve(auth.get(request_options))["status"] == "approved"


def test_replayed_registration_and_assertion_are_refused(tenant: Tenant) -> None:
    who = identity()
    auth = SoftAuthenticator()
    factor = tenant.create_factor(who)
    attestation = auth.create(factor["options"]["publicKey"])
    tenant.verify_factor(attestation)
    assert_error(tenant.passkeys("VerifyFactor", attestation), 403, 60311)

    challenge = tenant.challenge(identity=who)
    assertion = auth.get(challenge["options"]["publicKey"])
    tenant.approve(assertion)
    # the very same assertion again: the challenge was already answered
    assert_error(tenant.passkeys("ApproveChallenge", assertion), 403, 60322)


def test_a_sign_count_that_does_not_grow_is_refused(tenant: Tenant, db: redis.Redis) -> None:
    who = identity()
    auth = SoftAuthenticator()
    tenant.enrol(who, auth)
    first = tenant.challenge(identity=who)
    tenant.approve(auth.get(first["options"]["publicKey"]))  # count 1

    second = tenant.challenge(identity=who)
    options = second["options"]["publicKey"]
    # a cloned authenticator: a valid signature, a counter that did not move
    for count in (1, 0):
        assert_error(
            tenant.passkeys("ApproveChallenge", auth.get(options, count=count)), 403, 60324
        )
    stored = json.loads(db.get(f"vo:challenge:{second['sid']}") or b"{}")
    assert stored["status"] == "pending"
    assert tenant.approve(auth.get(options, count=5))["status"] == "approved"


def test_an_unknown_credential_is_refused(tenant: Tenant, db: redis.Redis) -> None:
    who = identity()
    auth = SoftAuthenticator()
    tenant.enrol(who, auth)
    challenge = tenant.challenge(identity=who)
    options = challenge["options"]["publicKey"]

    stranger = SoftAuthenticator(rp_id=RP_ID, user_handle=auth.user_handle)
    assert_error(tenant.passkeys("ApproveChallenge", stranger.get(options)), 403, 60324)
    # the right credential id signed by another key
    impostor = SoftAuthenticator(
        credential_id=auth.credential_id, rp_id=RP_ID, user_handle=auth.user_handle
    )
    assert_error(tenant.passkeys("ApproveChallenge", impostor.get(options)), 403, 60324)
    # a credential of another entity of the same service
    other = SoftAuthenticator()
    tenant.enrol(identity(), other)
    assert_error(tenant.passkeys("ApproveChallenge", other.get(options)), 403, 60324)

    stored = json.loads(db.get(f"vo:challenge:{challenge['sid']}") or b"{}")
    assert stored["status"] == "pending" and stored["attempts"] == 3
    assert tenant.approve(auth.get(options))["status"] == "approved"


def test_an_expired_challenge_is_refused(tenant: Tenant, db: redis.Redis) -> None:
    who = identity()
    auth = SoftAuthenticator()
    tenant.enrol(who, auth)
    challenge = tenant.challenge(identity=who)
    # five minutes pass (the stored expiry moved into the past)
    key = f"vo:challenge:{challenge['sid']}"
    record = json.loads(db.get(key) or b"{}")
    past = datetime.now(UTC) - timedelta(seconds=1)
    record["expiration_date"] = past.strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"
    db.set(key, json.dumps(record), keepttl=True)

    assertion = auth.get(challenge["options"]["publicKey"])
    assert_error(tenant.passkeys("ApproveChallenge", assertion), 403, 60323)
    assert json.loads(db.get(key) or b"{}")["status"] == "expired"
    assert_error(tenant.passkeys("ApproveChallenge", assertion), 403, 60323)


def test_too_many_wrong_answers_lock_the_challenge(tenant: Tenant) -> None:
    who = identity()
    auth = SoftAuthenticator()
    tenant.enrol(who, auth)
    options = tenant.challenge(identity=who)["options"]["publicKey"]
    for _ in range(5):
        bad = auth.get(options, origin="https://evil.test")
        assert_error(tenant.passkeys("ApproveChallenge", bad), 403, 60324)
    assert_error(tenant.passkeys("ApproveChallenge", auth.get(options)), 429, 60308)


# ---- which credentials a challenge asks for ------------------------------------------------------


def test_challenge_for_one_factor_and_for_unverified_or_unknown(tenant: Tenant) -> None:
    who = identity()
    first, second = SoftAuthenticator(), SoftAuthenticator()
    first_sid = tenant.enrol(who, first)
    tenant.enrol(who, second)
    pending = tenant.create_factor(who)  # never verified

    both = tenant.challenge(identity=who)["options"]["publicKey"]["allowCredentials"]
    assert {c["id"] for c in both} == {b64url(first.credential_id), b64url(second.credential_id)}

    one = tenant.challenge(identity=who, factor_sid=first_sid)
    assert one["factor_sid"] == first_sid
    assert [c["id"] for c in one["options"]["publicKey"]["allowCredentials"]] == [
        b64url(first.credential_id)
    ]
    # bound to the first factor: the second passkey cannot answer it
    assert_error(
        tenant.passkeys("ApproveChallenge", second.get(one["options"]["publicKey"])), 403, 60324
    )
    assert tenant.approve(first.get(one["options"]["publicKey"]))["factor_sid"] == first_sid

    assert_error(tenant.passkeys("Challenges", {"factor_sid": pending["sid"]}), 403, 60318)
    assert_error(tenant.passkeys("Challenges", {"identity": identity()}), 404, 20404)
    assert_error(tenant.passkeys("Challenges", {"factor_sid": "YF" + "0" * 32}), 404, 20404)
    assert_error(
        tenant.passkeys("Challenges", {"factor_sid": first_sid, "identity": identity()}), 404, 20404
    )
    lonely = identity()
    tenant.create_factor(lonely)
    assert_error(tenant.passkeys("Challenges", {"identity": lonely}), 403, 60318)


def test_a_discoverable_challenge_is_bound_by_the_credential_that_answers(
    tenant: Tenant, db: redis.Redis
) -> None:
    who = identity()
    auth = SoftAuthenticator()
    factor_sid = tenant.enrol(who, auth)
    challenge = tenant.challenge()  # no identity, no factor: any passkey of the service
    assert (
        challenge["identity"] == ""
        and challenge["factor_sid"] == ""
        and challenge["entity_sid"] == ""
    )
    options = challenge["options"]["publicKey"]
    assert options["allowCredentials"] == [] and options["rpId"] == RP_ID

    # the user handle must be the credential's own
    forged = auth.get(options, user_handle=b"YE" + b"0" * 32)
    assert_error(tenant.passkeys("ApproveChallenge", forged), 403, 60324)
    approved = tenant.approve(auth.get(options))
    assert approved["identity"] == who and approved["factor_sid"] == factor_sid
    assert approved["url"].endswith(f"/Entities/{who}/Challenges/{challenge['sid']}")
    # answered, it belongs to the entity: listed under it and kept like its other challenges
    index = db.zrange(f"vo:challenges:{tenant.service_sid}:{who}", 0, -1)
    assert challenge["sid"].encode() in index
    assert db.ttl(f"vo:challenge:{challenge['sid']}") == -1


# ---- bad requests --------------------------------------------------------------------------------


def test_bad_requests_are_4xx_in_twilio_shape(tenant: Tenant, stack: Stack) -> None:
    base = f"/v2/Services/{tenant.service_sid}/Passkeys"
    assert_error(tenant.call("POST", f"{base}/Factors", data=b"{not json"), 400, 60200)
    assert_error(tenant.passkeys("Factors", ["a list"]), 400, 60200)
    for body, param in [
        ({"identity": identity()}, "friendly_name"),
        ({"friendly_name": "x" * 65, "identity": identity()}, "friendly_name"),
        ({"friendly_name": 5, "identity": identity()}, "friendly_name"),
    ]:
        got = assert_error(tenant.passkeys("Factors", body), 400, 60200)
        assert got["message"] == f"Invalid parameter: {param}"
    # identities follow the Entities' rule: 8 to 64 letters, digits and dashes
    for bad in [None, "short", "has space-123", "dots.are.out", "x" * 65, 12345678]:
        body = {"friendly_name": "x", "identity": bad}
        assert_error(tenant.passkeys("Factors", body), 400, 60306)
    assert_error(tenant.passkeys("Challenges", {"identity": "short"}), 400, 60306)
    assert_error(tenant.passkeys("Challenges", {"factor_sid": "YF123"}), 400, 60200)
    assert_error(tenant.passkeys("VerifyFactor", {}), 400, 60200)
    assert_error(
        tenant.passkeys("VerifyFactor", {"id": "a", "rawId": "a", "response": {}}), 400, 60200
    )
    not_b64 = {"id": "a", "rawId": "a", "response": {"clientDataJSON": "%%%"}}
    assert_error(tenant.passkeys("ApproveChallenge", not_b64), 400, 60200)
    mismatched = SoftAuthenticator(rp_id=RP_ID, user_handle=b"x").get({"challenge": "AAAA"})
    mismatched["id"] = b64url(b"another id")
    assert_error(tenant.passkeys("ApproveChallenge", mismatched), 400, 60200)
    # a well-formed answer to a challenge nobody issued
    unknown = SoftAuthenticator(rp_id=RP_ID, user_handle=b"x").get(
        {"challenge": b64url(os.urandom(32))}
    )
    assert_error(tenant.passkeys("ApproveChallenge", unknown), 404, 60391)

    # credentials and services
    anonymous = requests.post(
        f"{stack.url}{base}/Factors", json={}, verify=str(stack.cert), timeout=10
    )
    assert_error(anonymous, 401, 20003)
    other = stack.cli("accounts", "create", "--name", "other")
    assert isinstance(other, dict)
    foreign = requests.post(
        f"{stack.url}{base}/Factors",
        json={"friendly_name": "x", "identity": identity()},
        auth=(str(other["account_sid"]), str(other["auth_token"])),
        verify=str(stack.cert),
        timeout=10,
    )
    assert_error(foreign, 404, 20404)


def test_a_service_cannot_answer_for_another(tenant: Tenant) -> None:
    who = identity()
    auth = SoftAuthenticator()
    factor = tenant.create_factor(who)
    attestation = auth.create(factor["options"]["publicKey"])
    first_service = tenant.service_sid
    tenant.service(**{"Passkeys.RelyingParty.Id": RP_ID, "Passkeys.RelyingParty.Origins": ORIGIN})
    # the registration challenge belongs to the first service
    assert_error(tenant.passkeys("VerifyFactor", attestation), 403, 60311)
    tenant.service_sid = first_service
    tenant.verify_factor(attestation)


# ---- webhooks ------------------------------------------------------------------------------------


def test_factor_and_challenge_events_reach_the_service_webhooks(
    tenant: Tenant, own_receiver: WebhookReceiver
) -> None:
    resp = tenant.call(
        "POST",
        f"/v2/Services/{tenant.service_sid}/Webhooks",
        data={
            "FriendlyName": "passkeys",
            "EventTypes": ["factor.created", "factor.verified", "challenge.approved"],
            "WebhookUrl": own_receiver.url("/passkeys"),
        },
    )
    assert resp.status_code == 201, resp.text
    who = identity()
    auth = SoftAuthenticator()
    factor_sid = tenant.enrol(who, auth)
    challenge = tenant.challenge(identity=who)
    tenant.approve(auth.get(challenge["options"]["publicKey"]))

    def events() -> list[dict[str, str]]:
        return [dict(parse_qsl(d.body.decode())) for d in list(own_receiver.deliveries)]

    wait_until(lambda: len(events()) >= 3, timeout=15, what="three passkeys events")
    by_type = {e["type"]: e for e in events()}
    assert set(by_type) == {"factor.created", "factor.verified", "challenge.approved"}
    for event in by_type.values():
        assert event["factor_sid"] == factor_sid
        assert event["factor_type"] == "passkeys"
        assert event["entity_identity"] == who
    assert by_type["challenge.approved"]["challenge_sid"] == challenge["sid"]
    assert by_type["challenge.approved"]["challenge_status"] == "approved"
