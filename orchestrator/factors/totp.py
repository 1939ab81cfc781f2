"""TOTP factors (RFC 6238, through `pyotp`): secrets, configuration, provisioning URIs and
code checks that accept each time step at most once.

A code is checked against the current step and `skew` steps either side. The factor keeps the
last step a code was accepted for (`Factor.last_used_step`); a code for that step or an earlier
one is refused, so a code cannot be replayed inside its window (RFC 6238 §5.2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import pyotp

__all__ = [
    "ALGORITHMS",
    "DEFAULT",
    "TotpConfig",
    "accept",
    "match_step",
    "new_secret",
    "normalize_secret",
    "provisioning_uri",
]

Algorithm = Literal["sha1", "sha256", "sha512"]
ALGORITHMS: dict[str, Any] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
TIME_STEP_RANGE = (20, 60)
SKEW_RANGE = (0, 2)
CODE_LENGTH_RANGE = (3, 8)
# Base32 secrets: at least 80 bits (RFC 4226 asks for 128, recommends 160; authenticator apps
# take 80), at most 1024 bits
_SECRET_CHARS = (16, 205)
_BASE32 = re.compile(r"[A-Z2-7]+=*")
_GENERATED_DIGITS = 8  # the longest code_length


@dataclass(frozen=True)
class TotpConfig:
    time_step: int = 30
    skew: int = 1
    code_length: int = 6
    alg: Algorithm = "sha1"

    def __post_init__(self) -> None:
        if not TIME_STEP_RANGE[0] <= self.time_step <= TIME_STEP_RANGE[1]:
            raise ValueError("time_step")
        if not SKEW_RANGE[0] <= self.skew <= SKEW_RANGE[1]:
            raise ValueError("skew")
        if not CODE_LENGTH_RANGE[0] <= self.code_length <= CODE_LENGTH_RANGE[1]:
            raise ValueError("code_length")
        if self.alg not in ALGORITHMS:
            raise ValueError("alg")

    def as_config(self) -> dict[str, Any]:
        """The factor's `config` as the API shows it."""
        return {
            "alg": self.alg,
            "skew": self.skew,
            "code_length": self.code_length,
            "time_step": self.time_step,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TotpConfig:
        return cls(
            time_step=int(config.get("time_step", DEFAULT.time_step)),
            skew=int(config.get("skew", DEFAULT.skew)),
            code_length=int(config.get("code_length", DEFAULT.code_length)),
            alg=config.get("alg", DEFAULT.alg),
        )

    def otp(self, secret: str) -> pyotp.TOTP:
        """An 8-digit pyotp generator: pyotp refuses fewer than 6 digits, and RFC 4226's code is
        `truncated % 10**digits`, so a shorter code is the 8-digit one's last digits."""
        return pyotp.TOTP(
            secret, digits=_GENERATED_DIGITS, digest=ALGORITHMS[self.alg], interval=self.time_step
        )

    def code_at(self, secret: str, step: int) -> str:
        """The code of time step `step` (the HOTP counter)."""
        return self.otp(secret).generate_otp(step)[-self.code_length :]


DEFAULT = TotpConfig()


def new_secret() -> str:
    """A fresh 160-bit secret, Base32 without padding (what authenticator apps expect)."""
    return pyotp.random_base32(32)


def normalize_secret(value: str) -> str | None:
    """A caller's Base32 secret, upper-cased without spaces; None when it is not Base32 or its
    length is out of range."""
    given = value.replace(" ", "").upper()
    if not _BASE32.fullmatch(given):
        return None
    secret = given.rstrip("=")
    if not _SECRET_CHARS[0] <= len(secret) <= _SECRET_CHARS[1]:
        return None
    try:
        base64.b32decode(secret + "=" * (-len(secret) % 8))
    except (binascii.Error, ValueError):
        return None
    return secret


def provisioning_uri(secret: str, account_name: str, issuer: str, config: TotpConfig) -> str:
    """`otpauth://totp/{issuer}:{account}?secret=…&issuer=…&algorithm=…&digits=…&period=…`,
    every parameter spelled out, as Twilio's `binding.uri` does."""
    label = f"{quote(issuer, safe='')}:{quote(account_name, safe='')}"
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": config.alg.upper(),
            "digits": config.code_length,
            "period": config.time_step,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def match_step(secret: str, code: str, config: TotpConfig, at: float) -> int | None:
    """The time step (counter) within ±skew of `at` whose code is `code`, or None.

    The current step is tried first, then the nearer neighbours; every candidate is compared in
    constant time."""
    if len(code) != config.code_length or not code.isascii() or not code.isdigit():
        return None
    current = int(at // config.time_step)
    order = [current]
    for distance in range(1, config.skew + 1):
        order += [current - distance, current + distance]
    found: int | None = None
    for step in order:
        if step < 0:
            continue
        if hmac.compare_digest(config.code_at(secret, step), code) and found is None:
            found = step
    return found


def accept(
    secret: str, code: str, config: TotpConfig, at: float, last_used_step: int
) -> int | None:
    """The step to record as used when `code` is right and not a replay, else None."""
    step = match_step(secret, code, config, at)
    if step is None or step <= last_used_step:
        return None
    return step
