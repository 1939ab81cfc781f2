"""Structured logs: one JSON object per line, with credentials scrubbed as a last line of defence.

The code never logs codes, secrets or Authorization headers on purpose; the formatter still
masks anything shaped like one (a JWT, a Bearer/Basic credential, a `whsec_` secret, a PEM
private key), in the message and in tracebacks alike, in case a library or an exception
message carries one.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "configure", "redact"]

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "[private key]",
    ),
    (re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), "[jwt]"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[\w\-.~+/]+=*"), r"\1\2[redacted]"),
    (re.compile(r"(?i)\b(authorization)([\"']?\s*[:=]\s*[\"']?)[^\"',}\s]+"), r"\1\2[redacted]"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message"[, "exc"]}`, time in UTC with milliseconds."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        body: dict[str, str] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            body["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(body, ensure_ascii=False)


def configure(level: str) -> None:
    """JSON lines on stderr for the root logger (a no-op when logging is already set up)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("arq").setLevel(logging.WARNING)
