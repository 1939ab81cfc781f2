"""Email through a real SMTP server (aiosmtpd) on a second stack configured for the smtp provider."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support.client import VonageApi, create_app
from tests.support.processes import Stack, free_port, running_stack, wait_until
from tests.support.receiver import WebhookReceiver

SMTP_FROM = "verify@acme.test"
_CODE_LINE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


class Collector:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        parsed = message_from_bytes(envelope.content, policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def wait_for(self, request_id: str, timeout: float = 15) -> tuple[str, list[str], EmailMessage]:
        """The message for `request_id` (its Message-ID is derived from the request id)."""

        def find() -> tuple[str, list[str], EmailMessage] | None:
            with self._lock:
                for item in self.messages:
                    if request_id in str(item[2]["Message-ID"]):
                        return item
            return None

        found: tuple[str, list[str], EmailMessage] = wait_until(
            find, timeout=timeout, what=f"an email for {request_id}"
        )
        return found


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.collector = Collector()
        self.controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)
        self.running = False

    def start(self) -> None:
        self.controller.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_stack(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("smtp-stack"),
        # a nested key merges with the TOML table: the other channels stay on the sandbox
        VERIFY_CHANNEL_PROVIDERS__EMAIL="smtp",
        VERIFY_SMTP_HOST="127.0.0.1",
        VERIFY_SMTP_PORT=str(smtp.port),
        VERIFY_SMTP_FROM=SMTP_FROM,
    ) as s:
        yield s


@pytest.fixture
def smtp_api(smtp_stack: Stack, receiver: WebhookReceiver, tmp_path: Path) -> VonageApi:
    hook_path = f"/hooks/{uuid.uuid4().hex}"
    app = create_app(smtp_stack, "smtp-test", receiver.url(hook_path), tmp_path, hook_path)
    api = VonageApi(smtp_stack.url, app, verify=str(smtp_stack.cert))
    # the main stack's fixture exports REQUESTS_CA_BUNDLE, which would beat our own certificate
    api.http.trust_env = False
    return api


def mailbox() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.test"


def code_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    found = _CODE_LINE.findall(text)
    assert len(found) == 1, text
    return str(found[0])


def test_email_code_arrives_over_smtp_and_verifies(
    smtp: SmtpServer, smtp_api: VonageApi, receiver: WebhookReceiver
) -> None:
    to = mailbox()
    started = smtp_api.start(
        {"brand": "AcmeMail", "code_length": 6, "workflow": [{"channel": "email", "to": to}]}
    )
    assert started.status_code == 202, started.text
    rid = started.json()["request_id"]

    mail_from, rcpt_tos, message = smtp.collector.wait_for(rid)
    assert mail_from == SMTP_FROM
    assert rcpt_tos == [to]
    assert message["From"] == SMTP_FROM
    assert message["To"] == to
    assert "AcmeMail" in message["Subject"]
    assert message["Content-Language"] == "en-us"
    code = code_in(message)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert code in text
    assert "AcmeMail" in text
    # the sandbox outbox stays empty: the email really left through SMTP
    assert smtp_api.messages(to) == []

    checked = smtp_api.check(rid, code)
    assert checked.status_code == 200, checked.text
    assert checked.json() == {"request_id": rid, "status": "completed"}
    summary = receiver.wait_summary(rid).json
    assert summary["status"] == "completed"
    assert [s["channel"] for s in summary["workflow"]] == ["email"]


def test_email_step_sender_overrides_default_from(smtp: SmtpServer, smtp_api: VonageApi) -> None:
    to = mailbox()
    started = smtp_api.start(
        {
            "brand": "AcmeMail",
            "code_length": 6,
            "workflow": [{"channel": "email", "to": to, "from": "security@acme.test"}],
        }
    )
    assert started.status_code == 202, started.text
    rid = started.json()["request_id"]
    mail_from, _, message = smtp.collector.wait_for(rid)
    assert mail_from == "security@acme.test"
    assert message["From"] == "security@acme.test"
    assert smtp_api.check(rid, code_in(message)).status_code == 200


def test_smtp_down_fails_over_to_sms(
    smtp: SmtpServer, smtp_api: VonageApi, receiver: WebhookReceiver, number: str
) -> None:
    # runs last in this module: it takes the SMTP server away for good
    smtp.stop()
    to = mailbox()
    started = smtp_api.start(
        {
            "brand": "AcmeMail",
            "workflow": [{"channel": "email", "to": to}, {"channel": "sms", "to": number}],
        }
    )
    assert started.status_code == 202, started.text
    rid = started.json()["request_id"]

    sms = smtp_api.wait_message(number, rid, "sms", timeout=20)
    assert sms["code"] in sms["text"]
    assert "AcmeMail" in sms["text"]

    checked = smtp_api.check(rid, sms["code"])
    assert checked.status_code == 200, checked.text
    summary = receiver.wait_summary(rid).json
    assert summary["status"] == "completed"
    assert [(s["channel"], s["status"]) for s in summary["workflow"]] == [
        ("email", "failed"),
        ("sms", "completed"),
    ]
    events = [d.json for d in receiver.for_request(rid) if d.json.get("type") == "event"]
    assert {"channel": "email", "status": "failed"}.items() <= next(
        e for e in events if e["channel"] == "email"
    ).items()
