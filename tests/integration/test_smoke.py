"""The walking skeleton through real processes: start, read the outbox, check, webhooks."""

from __future__ import annotations

from tests.support.client import VonageApi
from tests.support.receiver import WebhookReceiver


def test_sms_start_check_and_summary(
    api: VonageApi, receiver: WebhookReceiver, number: str
) -> None:
    started = api.start({"brand": "ACME", "workflow": [{"channel": "sms", "to": number}]})
    assert started.status_code == 202, started.text
    rid = started.json()["request_id"]
    message = api.wait_message(number, rid, "sms")
    assert message["code"] in message["text"]
    checked = api.check(rid, message["code"])
    assert checked.status_code == 200
    assert checked.json() == {"request_id": rid, "status": "completed"}
    summary = receiver.wait_summary(rid).json
    assert summary["status"] == "completed"
    assert [s["status"] for s in summary["workflow"]] == ["completed"]
