"""`kind = "smpp"`: an SMPP 3.4 ESME bound as a transceiver to the operator's SMSC.

Configuration only: receipts come back in-band (deliver_sm), so unlike the HTTP kinds there is
no web-side receipt parser; the worker's session turns them into Receipts
(workers/providers/smpp/receipts.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["SmppConfig"]


class SmppConfig(BaseModel):
    """One SMSC. Field sizes are SMPP 3.4's (section 4.1): longer values can't be sent."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["smpp"]
    channels: list[str] = Field(default_factory=lambda: ["sms"])
    host: str = Field(min_length=1)
    port: int = Field(default=2775, ge=1, le=65535)
    system_id: str = Field(min_length=1, max_length=15)
    password: SecretStr
    system_type: str = Field(default="", max_length=12)
    source_addr: str = Field(min_length=1, max_length=20)
    # None: chosen from source_addr (alphanumeric → TON 5 NPI 0; digits → TON 1 NPI 1)
    source_addr_ton: int | None = Field(default=None, ge=0, le=255)
    source_addr_npi: int | None = Field(default=None, ge=0, le=255)
    dest_addr_ton: int = Field(default=1, ge=0, le=255)
    dest_addr_npi: int = Field(default=1, ge=0, le=255)
    window: int = Field(default=10, ge=1, le=1000)  # unacknowledged submit_sm in flight
    throughput: float | None = Field(default=None, gt=0)  # submits per second, None = no cap
    enquire_link_seconds: float = Field(default=30, gt=0)
    reconnect_min_seconds: float = Field(default=1, gt=0)
    reconnect_max_seconds: float = Field(default=60, gt=0)
    timeout_seconds: float = Field(default=10, gt=0)  # the wait for submit_sm_resp
    long_messages: Literal["udh", "payload"] = "udh"
    registered_delivery: bool = True

    @field_validator("password")
    @classmethod
    def _password_fits(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) > 8:
            # SMPP 3.4 gives the password 9 octets with its NUL; a longer one would be cut
            raise ValueError("at most 8 characters (SMPP 3.4 password field)")
        return value

    @field_validator("system_id", "system_type", "source_addr")
    @classmethod
    def _ascii(cls, value: str) -> str:
        if not value.isascii() or "\x00" in value:
            raise ValueError("must be ASCII without NUL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmppConfig:
        if self.reconnect_max_seconds < self.reconnect_min_seconds:
            raise ValueError("reconnect_max_seconds must be >= reconnect_min_seconds")
        if not self._numeric_source() and len(self.source_addr) > 11:
            raise ValueError("an alphanumeric source_addr is at most 11 characters")
        return self

    def _numeric_source(self) -> bool:
        return self.source_addr.lstrip("+").isdigit()

    def source_ton_npi(self) -> tuple[int, int]:
        """The source address's TON/NPI: as set, else international/E.164 for digits and
        alphanumeric/unknown for a name."""
        ton, npi = (1, 1) if self._numeric_source() else (5, 0)
        return (
            ton if self.source_addr_ton is None else self.source_addr_ton,
            npi if self.source_addr_npi is None else self.source_addr_npi,
        )

    def source(self) -> str:
        """source_addr as sent: digits without a leading "+" (TON 1 says international)."""
        return self.source_addr.lstrip("+") if self._numeric_source() else self.source_addr
