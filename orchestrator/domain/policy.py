"""Limits and timings that shape every verification, in one place."""

from __future__ import annotations

__all__ = [
    "BRAND_MAX",
    "CHANNEL_TIMEOUT_DEFAULT",
    "CHANNEL_TIMEOUT_RANGE",
    "CODE_LENGTH_DEFAULT",
    "CODE_LENGTH_RANGE",
    "MAX_CODE_ATTEMPTS",
    "MAX_STEPS",
    "SA_CODE_LENGTH",
    "SA_SESSION_TTL",
    "SILENT_AUTH_TIMEOUT",
]

MAX_STEPS = 3
BRAND_MAX = 18
CODE_LENGTH_RANGE = (4, 10)
CODE_LENGTH_DEFAULT = 4
CHANNEL_TIMEOUT_RANGE = (15, 900)
CHANNEL_TIMEOUT_DEFAULT = 180
# the third wrong code ends the verification
MAX_CODE_ATTEMPTS = 3
# a silent-auth step always waits 60 s for the device, whatever channel_timeout says
SILENT_AUTH_TIMEOUT = 60
# the check URL is single use and lives at most 10 minutes
SA_SESSION_TTL = 600
SA_CODE_LENGTH = 8
