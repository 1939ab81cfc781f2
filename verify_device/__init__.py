"""A Python stand-in for the Verify Push mobile SDKs: key generation, enrolment with an access
token, factor verification, listing challenges and approving or denying them with signed JWTs
(Silent Device Approval included). Needs only `cryptography` and `PyJWT`."""

from verify_device.client import (
    ChallengeAlreadyResponded,
    ChallengeExpired,
    DeviceClient,
    DeviceError,
    Enrolment,
)
from verify_device.keys import DeviceKey

__all__ = [
    "ChallengeAlreadyResponded",
    "ChallengeExpired",
    "DeviceClient",
    "DeviceError",
    "DeviceKey",
    "Enrolment",
]
