"""Job names and deterministic job ids shared by the web process (enqueue) and workers (run)."""

from __future__ import annotations

import json
from typing import Any

from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix

__all__ = [
    "CHALLENGE_EXPIRE",
    "DELIVER_WEBHOOK",
    "PUSH_SEND",
    "QUEUE",
    "SEND_STEP",
    "STEP_TIMEOUT",
    "challenge_expire_job_id",
    "job_key",
    "push_send_job_id",
    "send_job_id",
    "serialize_job",
    "timeout_job_id",
    "webhook_job_id",
]

QUEUE = default_queue_name
SEND_STEP = "send_step"
STEP_TIMEOUT = "step_timeout"
DELIVER_WEBHOOK = "deliver_webhook"
CHALLENGE_EXPIRE = "challenge_expire"
PUSH_SEND = "push_send"
EXPIRES_EXTRA_MS = expires_extra_ms


# send jobs are "send:<request id>:<step>": the worker reads the verification with the claim
SEND_JOB_PREFIX = "send:"


def send_job_id(request_id: str, step: int) -> str:
    return f"{SEND_JOB_PREFIX}{request_id}:{step}"


def timeout_job_id(request_id: str, step: int) -> str:
    return f"timeout:{request_id}:{step}"


def webhook_job_id(message_id: str, attempt: int, replay: int = 0) -> str:
    """`replay` n > 0: the n-th operator replay's jobs (webhook:<id>:replay-<n>[:<attempt>])."""
    if replay:
        suffix = "" if attempt == 1 else f":{attempt}"
        return f"webhook:{message_id}:replay-{replay}{suffix}"
    return f"webhook:{message_id}:{attempt}"


def challenge_expire_job_id(challenge_sid: str) -> str:
    """One expiry job per challenge, due at its expiration_date."""
    return f"challenge-expire:{challenge_sid}"


def push_send_job_id(message_id: str) -> str:
    """One send job per push notification (the challenge's first, or a Notification NT…)."""
    return f"push:{message_id}"


def job_key(job_id: str) -> str:
    return job_key_prefix + job_id


def serialize_job(function: str, args: list[Any], enqueue_ms: int) -> bytes:
    """An arq job record in the JSON form our workers deserialize (never pickle). arq's empty
    fields (job try "t": null, kwargs "k": {}) are left out: every pending verification keeps
    one such record (its step timeout); `deserialize_job` puts them back."""
    record: dict[str, Any] = {"f": function, "a": args, "et": enqueue_ms}
    return json.dumps(record, separators=(",", ":")).encode()


def deserialize_job(raw: bytes) -> Any:
    """The workers' arq job_deserializer: JSON, with the fields `serialize_job` leaves out."""
    value = json.loads(raw)
    if isinstance(value, dict) and "f" in value:
        value.setdefault("t", None)
        value.setdefault("k", {})
    return value
