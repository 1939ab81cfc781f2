"""A delivery receipt, whichever vendor sent it, and the error for one that fails its signature."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["BadReceipt", "ForgedReceipt", "Receipt", "ReceiptRequest", "ReceiptStatus"]

# a vendor's many words for a message's fate, folded to what the workflow acts on:
# "sent" (handed to the network), "delivered" (the handset has it), "failed" (it never will)
ReceiptStatus = Literal["sent", "delivered", "failed"]


@dataclass(frozen=True)
class Receipt:
    """What a provider said about one message it accepted, named by the provider's own id."""

    provider_id: str
    status: ReceiptStatus
    error: str | None = None  # the vendor's error code or reason, verbatim and short
    raw_status: str = ""  # the vendor's own word (DELIVRD, undelivered, …), for logs and metrics


class ForgedReceipt(Exception):
    """The request does not carry the vendor's valid signature: answer 4xx, change nothing."""


class BadReceipt(ValueError):
    """Signed correctly but not a body the vendor sends: answer 400, change nothing."""


@dataclass(frozen=True)
class ReceiptRequest:
    """An HTTP request a vendor made to `{public_url}/providers/{name}/...`, framework-free.

    `url` is the full URL as the vendor called it (public_url + path + query string), which is
    what Twilio signs; `headers` has lower-cased names; `query` the decoded query string.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
