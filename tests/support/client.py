"""A small HTTP client for the Vonage dialect, minting JWTs the way the SDKs do."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests

from .processes import Stack, wait_until


@dataclass
class TestApp:
    application_id: str
    account_sid: str
    api_key: str
    api_secret: str
    signature_secret: str
    webhook_secret: str
    private_key_path: str
    hook_path: str

    __test__ = False  # not a pytest class

    @property
    def private_key(self) -> str:
        with open(self.private_key_path) as fh:
            return fh.read()

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "application_id": self.application_id,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "exp": now + 900,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.private_key, algorithm="RS256")


def create_app(stack: Stack, name: str, status_url: str, key_dir: Path, hook_path: str) -> TestApp:
    """A new application on `stack` (`apps create`), its private key written into `key_dir`."""
    key_path = key_dir / f"{uuid.uuid4().hex}.key"
    data = stack.cli(
        "apps", "create", "--name", name, "--status-url", status_url,
        "--private-key-out", str(key_path),
    )  # fmt: skip
    assert isinstance(data, dict)
    return TestApp(
        application_id=str(data["application_id"]),
        account_sid=str(data["account_sid"]),
        api_key=str(data["api_key"]),
        api_secret=str(data["api_secret"]),
        signature_secret=str(data["signature_secret"]),
        webhook_secret=str(data["webhook_secret"]),
        private_key_path=str(data["private_key_path"]),
        hook_path=hook_path,
    )


class VonageApi:
    """Calls the service as a backend would. `auth` is "jwt" (default, webhooks on) or "basic"."""

    def __init__(self, base_url: str, app: TestApp, verify: str, auth: str = "jwt") -> None:
        self.base = base_url
        self.app = app
        self.http = requests.Session()
        self.http.verify = verify
        self.auth = auth

    def headers(self) -> dict[str, str]:
        if self.auth == "jwt":
            return {"Authorization": f"Bearer {self.app.token()}"}
        import base64

        raw = f"{self.app.api_key}:{self.app.api_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {**self.headers(), **kw.pop("headers", {})}
        return self.http.request(method, self.base + path, headers=headers, timeout=10, **kw)

    def start(self, body: Any) -> requests.Response:
        return self.request("POST", "/v2/verify", json=body)

    def check(self, request_id: str, code: str) -> requests.Response:
        return self.request("POST", f"/v2/verify/{request_id}", json={"code": code})

    def next_workflow(self, request_id: str) -> requests.Response:
        return self.request("POST", f"/v2/verify/{request_id}/next_workflow")

    def cancel(self, request_id: str) -> requests.Response:
        return self.request("DELETE", f"/v2/verify/{request_id}")

    def messages(self, to: str) -> list[dict[str, Any]]:
        resp = self.request("GET", "/sandbox/v1/messages", params={"to": to})
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()
        return result

    def wait_message(
        self, to: str, request_id: str, channel: str | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for m in self.messages(to):
                if m["request_id"] == request_id and (channel is None or m["channel"] == channel):
                    return m
            return None

        found: dict[str, Any] = wait_until(
            find, timeout=timeout, what=f"{channel or 'a'} message to {to}"
        )
        return found
