"""A Verify Push device, as the mobile SDKs behave, over plain HTTPS (stdlib `urllib`).

    device = DeviceClient(base_url, service_sid, identity, cafile="tls.crt")
    device.enroll(access_token, "My phone")           # creates the push factor with a new key
    device.verify_factor()                             # signs the factor SID: status verified
    pending = device.list_challenges(status="pending") # newest first
    device.approve(pending[0]["sid"])                  # signed JWT over the served fields

`silent_approve(transaction_id)` is Silent Device Approval: find the newest pending challenge
whose `hidden_details` carry the transaction id the app expects, and approve it without waiting
for a push. Everything after enrolment authenticates with Basic `token:<JWT>` signed by the
device key; on a 401 the client corrects its clock from the server's `Date` header and retries
once, like the SDKs.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from verify_device.keys import DeviceKey

__all__ = [
    "SIGNATURE_FIELDS_HEADER",
    "ChallengeAlreadyResponded",
    "ChallengeExpired",
    "DeviceClient",
    "DeviceError",
    "Enrolment",
]

SIGNATURE_FIELDS_HEADER = "Twilio-Verify-Signature-Fields"
SDK_VERSION = "verify-device-python/0.1"


class DeviceError(Exception):
    """The server refused a call: HTTP `status`, Twilio error `code`, its `message`."""

    def __init__(self, status: int, code: int | None, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class ChallengeExpired(DeviceError):
    """Refused locally: the challenge is expired (the SDKs do not even try)."""


class ChallengeAlreadyResponded(DeviceError):
    """Refused locally: the challenge was already approved or denied."""


@dataclass
class Enrolment:
    """What the device keeps about its factor after enrolment (with its private key)."""

    factor_sid: str
    account_sid: str
    service_sid: str
    identity: str
    credential_sid: str
    friendly_name: str
    notification_platform: str
    status: str = "unverified"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Enrolment:
        return cls(**json.loads(raw))


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: Any


class DeviceClient:
    def __init__(
        self,
        base_url: str,
        service_sid: str,
        identity: str,
        *,
        key: DeviceKey | None = None,
        enrolment: Enrolment | None = None,
        cafile: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service_sid = service_sid
        self.identity = identity
        self.key = key or DeviceKey.generate()
        self.enrolment = enrolment
        self.timeout = timeout
        self.clock_offset = 0.0  # server time - our time, learnt from a 401's Date header
        if ssl_context is None and urlsplit(self.base_url).scheme == "https":
            ssl_context = ssl.create_default_context(cafile=cafile)
        self._ssl = ssl_context

    # ---- HTTP ----------------------------------------------------------------------------------

    @property
    def entity_url(self) -> str:
        return f"{self.base_url}/v2/Services/{self.service_sid}/Entities/{self.identity}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        password: str,
        form: list[tuple[str, str]] | None = None,
    ) -> _Response:
        data = urlencode(form).encode() if form is not None else None
        credentials = base64.b64encode(f"token:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - the caller's service URL
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as resp:  # noqa: S310
                raw = resp.read()
                return _Response(resp.status, dict(resp.headers.items()), _json(raw))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return _Response(exc.code, dict(exc.headers.items()), _json(raw))

    def call(self, method: str, url: str, form: list[tuple[str, str]] | None = None) -> _Response:
        """Any call authenticated by the device key (Basic `token:<JWT>`); one retry after a
        401 with the clock synced from the server's Date header. DeviceError unless 2xx."""
        enrolment = self._enrolled()
        for attempt in range(2):
            token = self.key.auth_jwt(
                enrolment.credential_sid,
                enrolment.account_sid,
                now=time.time() + self.clock_offset,
            )
            resp = self._request(method, url, password=token, form=form)
            if resp.status != 401 or attempt:
                break
            date = resp.headers.get("Date")
            if date:
                self.clock_offset = parsedate_to_datetime(date).timestamp() - time.time()
        return _checked(resp)

    def _enrolled(self) -> Enrolment:
        if self.enrolment is None:
            raise RuntimeError("this device has no factor yet: enroll() first")
        return self.enrolment

    @property
    def factor_url(self) -> str:
        return f"{self.entity_url}/Factors/{self._enrolled().factor_sid}"

    # ---- factor --------------------------------------------------------------------------------

    def enroll(
        self,
        access_token: str,
        friendly_name: str,
        *,
        notification_platform: str = "none",
        notification_token: str | None = None,
        app_id: str = "com.example.verify",
        sdk_version: str = SDK_VERSION,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create the push factor with this device's public key, using the backend's access
        token (Basic `token:<access token>`)."""
        form = [
            ("FriendlyName", friendly_name),
            ("FactorType", "push"),
            ("Binding.Alg", "ES256"),
            ("Binding.PublicKey", self.key.public_key_b64),
            ("Config.SdkVersion", sdk_version),
            ("Config.AppId", app_id),
            ("Config.NotificationPlatform", notification_platform),
        ]
        if notification_token is not None:
            form.append(("Config.NotificationToken", notification_token))
        if metadata is not None:
            form.append(("Metadata", json.dumps(metadata)))
        resp = _checked(
            self._request("POST", f"{self.entity_url}/Factors", password=access_token, form=form)
        )
        body = resp.body
        self.enrolment = Enrolment(
            factor_sid=body["sid"],
            account_sid=body["account_sid"],
            service_sid=body["service_sid"],
            identity=body["identity"],
            credential_sid=body["config"]["credential_sid"],
            friendly_name=body["friendly_name"],
            notification_platform=body["config"]["notification_platform"],
            status=body["status"],
        )
        return dict(body)

    def verify_factor(self) -> dict[str, Any]:
        """Prove possession of the key: sign the factor SID (DER, base64)."""
        enrolment = self._enrolled()
        payload = self.key.factor_payload(enrolment.factor_sid)
        body = self.call("POST", self.factor_url, [("AuthPayload", payload)]).body
        enrolment.status = body["status"]
        return dict(body)

    def fetch_factor(self) -> dict[str, Any]:
        return dict(self.call("GET", self.factor_url).body)

    def update_factor(
        self,
        *,
        friendly_name: str | None = None,
        notification_token: str | None = None,
        sdk_version: str | None = None,
    ) -> dict[str, Any]:
        form = [
            (name, value)
            for name, value in [
                ("FriendlyName", friendly_name),
                ("Config.NotificationToken", notification_token),
                ("Config.SdkVersion", sdk_version),
            ]
            if value is not None
        ]
        return dict(self.call("POST", self.factor_url, form).body)

    def delete_factor(self) -> None:
        self.call("DELETE", self.factor_url)
        self.enrolment = None

    # ---- challenges ----------------------------------------------------------------------------

    def list_challenges(
        self, status: str | None = None, *, order: str = "desc", page_size: int = 50
    ) -> list[dict[str, Any]]:
        """This factor's challenges (newest first by default), every page followed."""
        query = {"FactorSid": self._enrolled().factor_sid, "Order": order, "PageSize": page_size}
        if status is not None:
            query["Status"] = status
        url: str | None = f"{self.entity_url}/Challenges?{urlencode(query)}"
        found: list[dict[str, Any]] = []
        while url:
            body = self.call("GET", url).body
            found += body["challenges"]
            url = body["meta"].get("next_page_url")
        return found

    def fetch_challenge(self, sid: str) -> tuple[dict[str, Any], list[str]]:
        """The challenge and the fields an answer must sign (empty once it is not pending)."""
        resp = self.call("GET", f"{self.entity_url}/Challenges/{sid}")
        header = next(
            (v for k, v in resp.headers.items() if k.lower() == SIGNATURE_FIELDS_HEADER.lower()),
            "",
        )
        fields = [f.strip() for f in header.split(",") if f.strip()]
        return dict(resp.body), fields

    def submit(
        self, sid: str, auth_payload: str, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """POST an AuthPayload as is (no local checks): the raw answer to a challenge."""
        form = [("AuthPayload", auth_payload)]
        if metadata is not None:
            form.append(("Metadata", json.dumps(metadata)))
        return dict(self.call("POST", f"{self.entity_url}/Challenges/{sid}", form).body)

    def respond(
        self, sid: str, status: str, metadata: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Approve or deny as the SDKs do: fetch, refuse locally unless pending, sign the served
        fields plus `status`, POST, then check the new status took."""
        if status not in {"approved", "denied"}:
            raise ValueError("status must be approved or denied")
        challenge, fields = self.fetch_challenge(sid)
        if challenge["factor_sid"] != self._enrolled().factor_sid:
            raise DeviceError(0, None, "the challenge belongs to another factor")
        if challenge["status"] == "expired":
            raise ChallengeExpired(0, 60323, "Challenge expired", challenge)
        if challenge["status"] != "pending":
            raise ChallengeAlreadyResponded(0, 60322, "Challenge already responded", challenge)
        if not fields:
            raise DeviceError(0, None, f"no {SIGNATURE_FIELDS_HEADER} header on the challenge")
        answered = self.submit(sid, self.key.approval_jwt(challenge, fields, status), metadata)
        if answered["status"] != status:
            raise DeviceError(0, None, f"challenge not updated: {answered['status']}", answered)
        return answered

    def approve(self, sid: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        return self.respond(sid, "approved", metadata)

    def deny(self, sid: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        return self.respond(sid, "denied", metadata)

    def silent_approve(
        self, transaction_id: str, *, key: str = "transaction_id"
    ) -> dict[str, Any] | None:
        """Silent Device Approval: approve the newest pending challenge whose hidden details
        carry `transaction_id` under `key`; None when there is none (nothing is approved)."""
        for challenge in self.list_challenges(status="pending", order="desc"):
            hidden = challenge.get("hidden_details") or {}
            if isinstance(hidden, dict) and hidden.get(key) == transaction_id:
                return self.approve(challenge["sid"])
        return None


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _checked(resp: _Response) -> _Response:
    if 200 <= resp.status < 300:
        return resp
    body = resp.body if isinstance(resp.body, dict) else {}
    code = body.get("code")
    raise DeviceError(
        resp.status,
        code if isinstance(code, int) else None,
        str(body.get("message", resp.body)),
        resp.body,
    )
