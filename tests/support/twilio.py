"""Twilio-dialect tenants on a test stack: an account, the official SDK aimed at the stack, and
one Verify service of that account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from twilio.rest import Client

from .processes import Stack


@dataclass(frozen=True)
class Account:
    sid: str
    token: str
    webhook_secret: str


def new_account(stack: Stack, name: str) -> Account:
    data = stack.cli("accounts", "create", "--name", name)
    assert isinstance(data, dict)
    return Account(
        sid=str(data["account_sid"]),
        token=str(data["auth_token"]),
        webhook_secret=str(data["webhook_secret"]),
    )


def sdk_client(
    stack: Stack, username: str, password: str, account_sid: str | None = None
) -> Client:
    """The unmodified SDK, aimed at the stack instead of verify.twilio.com."""
    client = Client(username, password, account_sid)
    # with either set (or TWILIO_EDGE/TWILIO_REGION), the SDK rewrites 127.0.0.1 into 127.ie1.0.1
    client.edge = client.region = None
    client.verify.base_url = stack.url
    return client


def basic_request(
    stack: Stack, auth: tuple[str, str], method: str, path: str, **kw: Any
) -> requests.Response:
    """Raw HTTP to the stack with Basic credentials, trusting its test certificate."""
    return requests.request(
        method, f"{stack.url}{path}", auth=auth, verify=str(stack.cert), timeout=10, **kw
    )


@dataclass
class Tenant:
    """A fresh account, the SDK signed in as it, and one of its Verify services."""

    stack: Stack
    account: Account
    client: Client
    service_sid: str

    @property
    def account_sid(self) -> str:
        return self.account.sid

    @property
    def auth_token(self) -> str:
        return self.account.token

    @property
    def webhook_secret(self) -> str:
        return self.account.webhook_secret

    @property
    def service(self) -> Any:
        return self.client.verify.v2.services(self.service_sid)

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        """Raw HTTP as the account, for what the SDK won't send."""
        return basic_request(self.stack, (self.account_sid, self.auth_token), method, path, **kw)

    def outbox(self, to: str) -> list[dict[str, Any]]:
        """Every sandbox message the account sent to `to`."""
        resp = self.request("GET", "/sandbox/v1/messages", params={"to": to})
        resp.raise_for_status()
        found: list[dict[str, Any]] = resp.json()
        return found


def new_tenant(stack: Stack, account_name: str, service_name: str, **service_params: Any) -> Tenant:
    account = new_account(stack, account_name)
    client = sdk_client(stack, account.sid, account.token)
    service = client.verify.v2.services.create(friendly_name=service_name, **service_params)
    return Tenant(stack, account, client, service.sid)
