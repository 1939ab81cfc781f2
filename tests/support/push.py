"""Keys and messages for the push provider tests: a Google service account and an APNs key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from workers.providers.push_base import NotificationPlatform, PushMessage

PROJECT = "verify-test-project"
CLIENT_EMAIL = "fcm-sender@verify-test-project.iam.gserviceaccount.com"
TEAM_ID = "TEAM123456"
KEY_ID = "KEY7654321"
TOPIC = "com.example.verifydemo"
ACCOUNT = "AC" + "a" * 32
SERVICE = "VA" + "b" * 32
FACTOR = "YF" + "1c" * 16
CHALLENGE = "YC" + "2d" * 16
DEVICE_TOKEN = "device-token-1"


def _pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class GoogleKey:
    """A service-account key pair as the Google console hands it out (the JSON), plus its
    public half for the fake token endpoint to check assertions with."""

    private: rsa.RSAPrivateKey

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def service_account(self, token_uri: str) -> dict[str, Any]:
        return {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "4f1c0ffee",
            "private_key": _pkcs8(self.private),
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        }


def google_key() -> GoogleKey:
    return GoogleKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class AppleKey:
    private: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return _pkcs8(self.private)

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write(self, directory: Path) -> Path:
        path = directory / f"AuthKey_{KEY_ID}.p8"
        path.write_text(self.pem, encoding="ascii")
        return path


def apple_key() -> AppleKey:
    return AppleKey(ec.generate_private_key(ec.SECP256R1()))


def push_message(
    platform: NotificationPlatform = "fcm",
    token: str | None = DEVICE_TOKEN,
    *,
    id: str = CHALLENGE + ":0",
    message: str = "Approve login from Chrome on Linux?",
) -> PushMessage:
    return PushMessage.for_challenge(
        id=id,
        account_sid=ACCOUNT,
        service_sid=SERVICE,
        factor_sid=FACTOR,
        challenge_sid=CHALLENGE,
        identity="ff483d1ff591898a9942916050d2ca3f",
        notification_platform=platform,
        notification_token=token,
        title="Verify Demo",
        message=message,
        ttl=600,
    )
