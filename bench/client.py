"""A minimal Vonage Verify v2 client for load: start and check, Basic or pre-signed JWT auth."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization

__all__ = ["WRONG_CODE", "VerifyClient", "basic_header", "jwt_headers", "start_body"]

# codes are digits, so a code with letters can never match: every check with it is a 400
WRONG_CODE = "wrongcode"
# the longest step timeout, so no step_timeout job comes due while a run is in progress
CHANNEL_TIMEOUT = 900


def start_body(to: str) -> bytes:
    body = {
        "brand": "Bench",
        "channel_timeout": CHANNEL_TIMEOUT,
        "workflow": [{"channel": "sms", "to": to}],
    }
    return json.dumps(body).encode()


def basic_header(api_key: str, api_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()


def jwt_headers(application_id: str, private_key_path: Path, count: int) -> list[str]:
    """`count` single-use RS256 tokens (each jti is accepted once), signed before the clock runs."""
    key = serialization.load_pem_private_key(private_key_path.read_bytes(), password=None)
    now = int(time.time())
    headers: list[str] = []
    for _ in range(count):
        claims = {
            "application_id": application_id,
            "iat": now,
            "exp": now + 900,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, key, algorithm="RS256")  # type: ignore[arg-type]
        headers.append("Bearer " + token)
    return headers


class VerifyClient:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, auth: str) -> None:
        self.http = http
        self.base_url = base_url
        self.auth = auth

    async def start(self, to: str, auth: str | None = None) -> tuple[int, str | None]:
        """POST /v2/verify; (status, request_id or None)."""
        headers = {"Authorization": auth or self.auth, "Content-Type": "application/json"}
        async with self.http.post(
            self.base_url + "/v2/verify", data=start_body(to), headers=headers
        ) as resp:
            payload = await resp.read()
            if resp.status != 202:
                return resp.status, None
            return resp.status, str(json.loads(payload)["request_id"])

    async def check(self, request_id: str, code: str) -> int:
        """POST /v2/verify/{id} with a code; the status (200 right, 400 wrong, 410 too many)."""
        headers = {"Authorization": self.auth, "Content-Type": "application/json"}
        body = json.dumps({"code": code}).encode()
        async with self.http.post(
            f"{self.base_url}/v2/verify/{request_id}", data=body, headers=headers
        ) as resp:
            await resp.read()
            return resp.status
