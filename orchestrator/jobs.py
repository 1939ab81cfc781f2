"""Job names and deterministic job ids shared by the web process (enqueue) and workers (run)."""

from __future__ import annotations

import json
from typing import Any

from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix

__all__ = [
    "DELIVER_WEBHOOK",
    "QUEUE",
    "SEND_STEP",
    "STEP_TIMEOUT",
    "job_key",
    "send_job_id",
    "serialize_job",
    "timeout_job_id",
    "webhook_job_id",
]

QUEUE = default_queue_name
SEND_STEP = "send_step"
STEP_TIMEOUT = "step_timeout"
DELIVER_WEBHOOK = "deliver_webhook"
EXPIRES_EXTRA_MS = expires_extra_ms


def send_job_id(request_id: str, step: int) -> str:
    return f"send:{request_id}:{step}"


def timeout_job_id(request_id: str, step: int) -> str:
    return f"timeout:{request_id}:{step}"


def webhook_job_id(message_id: str, attempt: int) -> str:
    return f"webhook:{message_id}:{attempt}"


def job_key(job_id: str) -> str:
    return job_key_prefix + job_id


def serialize_job(function: str, args: list[Any], enqueue_ms: int) -> bytes:
    """An arq job record in the JSON form our workers deserialize (never pickle)."""
    record: dict[str, Any] = {"t": None, "f": function, "a": args, "k": {}, "et": enqueue_ms}
    return json.dumps(record, separators=(",", ":")).encode()
