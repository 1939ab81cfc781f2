"""Helpers for the security tests.

`guard_stack` is a dedicated stack with the fraud guard's and the Basic-auth guard's limits low
enough to reach in a test (the shared `stack` runs them out of reach), DEBUG logs (so the log
test sees everything the processes say) and the worker's metrics port open. Every client in
these tests calls from its own loopback source address (127.0.x.y): per-IP limits of one test
never leak into another.
"""

from __future__ import annotations

import base64
import itertools
import random
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from tests.support.client import TestApp, VonageApi
from tests.support.processes import Stack, wait_until

# the limits of the guard stack, which the tests read back from here
NUMBER_LIMIT = 2
IP_LIMIT = 4
PREFIX_FLOOR = 3
PREFIX_MULTIPLIER = 3
AUTH_FAIL_LIMIT = 5
AUTH_FAIL_IP_LIMIT = 8
AUTH_FAIL_WINDOW = 4

_addresses = itertools.count(2)


# GET /metrics on the guard stack needs it (VERIFY_METRICS_TOKEN)
METRICS_TOKEN = "scrape-token-for-tests"
# the guard stack believes X-Forwarded-For from these (fresh_ip() starts at 127.0.10.1)
TRUSTED_PROXIES = "127.0.9.0/24"
PROXY_IP = "127.0.9.1"


def fresh_ip() -> str:
    """A loopback source address no other test in this session uses."""
    n = next(_addresses)
    return f"127.0.{10 + n // 250}.{1 + n % 250}"


class SourceAddressAdapter(HTTPAdapter):
    """Makes `requests` connect from a given local address."""

    def __init__(self, source: str, **kwargs: Any) -> None:
        self.source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(ip: str, verify: str) -> requests.Session:
    http = requests.Session()
    # not the environment's REQUESTS_CA_BUNDLE (the shared stack's certificate): this one
    http.trust_env = False
    http.verify = verify
    adapter = SourceAddressAdapter(ip, pool_maxsize=64)
    http.mount("https://", adapter)
    http.mount("http://", adapter)
    return http


def uk_number() -> str:
    return "4477009" + f"{random.randrange(10**5):05d}"


def french_number() -> str:
    return "336" + f"{random.randrange(10**8):08d}"


def us_number() -> str:
    return "1201555" + f"{random.randrange(10**4):04d}"


def sms_body(to: str, **extra: Any) -> dict[str, Any]:
    return {"brand": "ACME", "workflow": [{"channel": "sms", "to": to}], **extra}


class Vonage(VonageApi):
    """The Vonage test client, calling from its own source address (a new one per request when
    `rotate`, so that per-IP limits stay out of the way of what a test measures)."""

    def __init__(
        self,
        stack: Stack,
        app: TestApp,
        ip: str | None = None,
        auth: str = "jwt",
        rotate: bool = False,
    ) -> None:
        super().__init__(stack.url, app, verify=str(stack.cert), auth=auth)
        self.ip = ip or fresh_ip()
        self.rotate = rotate
        self.http = session_from(self.ip, str(stack.cert))

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        if self.rotate:
            self.http = session_from(fresh_ip(), str(self.http.verify))
        return super().request(method, path, **kw)

    def start_with(self, body: Any, authorization: str) -> requests.Response:
        """A start with exactly this Authorization header."""
        return self.request(
            "POST", "/v2/verify", json=body, headers={"Authorization": authorization}
        )


class Twilio:
    """A Twilio-dialect account and one of its services, over plain form posts."""

    def __init__(
        self, stack: Stack, ip: str | None = None, rotate: bool = False, **service_params: str
    ) -> None:
        data = stack.cli("accounts", "create", "--name", "security")
        assert isinstance(data, dict)
        self.stack = stack
        self.rotate = rotate
        self.sid = str(data["account_sid"])
        self.token = str(data["auth_token"])
        self.ip = ip or fresh_ip()
        self.http = session_from(self.ip, str(stack.cert))
        self.http.auth = (self.sid, self.token)
        created = self.post("/v2/Services", {"FriendlyName": "Acme", **service_params})
        assert created.status_code == 201, created.text
        self.service = str(created.json()["sid"])

    def post(self, path: str, data: dict[str, str], **kw: Any) -> requests.Response:
        http = self.http
        if self.rotate:
            http = session_from(fresh_ip(), str(self.stack.cert))
            http.auth = self.http.auth
        return http.post(self.stack.url + path, data=data, timeout=10, **kw)

    def start(self, to: str, channel: str = "sms", **params: str) -> requests.Response:
        body = {"To": to, "Channel": channel, **params}
        return self.post(f"/v2/Services/{self.service}/Verifications", body)

    def check(self, sid: str, code: str) -> requests.Response:
        return self.post(
            f"/v2/Services/{self.service}/VerificationCheck", {"VerificationSid": sid, "Code": code}
        )

    def cancel(self, sid: str) -> requests.Response:
        return self.post(f"/v2/Services/{self.service}/Verifications/{sid}", {"Status": "canceled"})

    def outbox(self, to: str) -> list[dict[str, Any]]:
        resp = self.http.get(self.stack.url + "/sandbox/v1/messages", params={"to": to}, timeout=10)
        resp.raise_for_status()
        found: list[dict[str, Any]] = resp.json()
        return found

    def code_for(self, to: str, sid: str) -> str:
        def find() -> str | None:
            for m in self.outbox(to):
                if m.get("request_id") == sid:
                    return str(m["code"])
            return None

        found: str = wait_until(find, timeout=15, what=f"sandbox message for {sid}")
        return found


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
