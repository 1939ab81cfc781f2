"""Push providers: one `send(PushMessage)` per Verify Push challenge notification.

Errors form one small tree::

    ProviderError                  (workers.providers.base: "delivery failed")
     └── PushDeliveryError         .permanent: retrying this message cannot succeed
                                   .status / .reason / .retry_after: what the service said

A message whose `notification_platform` is "none" is accepted and dropped by every provider:
such a device asked for no push and finds its challenges by listing them (silent approval).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from workers.providers.base import ProviderError

__all__ = [
    "PUSH_TYPE",
    "NotificationPlatform",
    "PushDeliveryError",
    "PushMessage",
    "PushProvider",
    "parse_retry_after",
]

NotificationPlatform = Literal["fcm", "apn", "none"]
# the `type` data key the Verify mobile SDKs look for in a challenge notification
PUSH_TYPE = "verify_push_challenge"


@dataclass(frozen=True, slots=True)
class PushMessage:
    """One challenge notification. `id` stays the same across retries of one send."""

    id: str
    account_sid: str
    service_sid: str
    factor_sid: str
    challenge_sid: str
    identity: str
    notification_platform: NotificationPlatform
    notification_token: str | None
    title: str
    body: str  # the challenge's Details.Message
    data: dict[str, str] = field(default_factory=dict)
    ttl: int = 300  # seconds the push services keep trying to reach the device
    priority: Literal["high"] = "high"

    @classmethod
    def for_challenge(
        cls,
        *,
        id: str,
        account_sid: str,
        service_sid: str,
        factor_sid: str,
        challenge_sid: str,
        identity: str,
        notification_platform: NotificationPlatform,
        notification_token: str | None,
        title: str,
        message: str,
        ttl: int = 300,
    ) -> PushMessage:
        """The message for a challenge, with the data keys the device SDKs read."""
        return cls(
            id=id,
            account_sid=account_sid,
            service_sid=service_sid,
            factor_sid=factor_sid,
            challenge_sid=challenge_sid,
            identity=identity,
            notification_platform=notification_platform,
            notification_token=notification_token,
            title=title,
            body=message,
            data={
                "challenge_sid": challenge_sid,
                "factor_sid": factor_sid,
                "message": message,
                "type": PUSH_TYPE,
            },
            ttl=ttl,
        )


class PushDeliveryError(ProviderError):
    """A push service refused or could not take the message.

    `permanent` is True when sending the same message again cannot succeed (a dead or
    malformed device token, a rejected payload); False for throttling, outages and timeouts.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class PushProvider(ABC):
    name: str

    @abstractmethod
    async def send(self, message: PushMessage) -> None:
        """Hand `message` to the push service; raise PushDeliveryError when it was not taken."""

    async def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract duty
        """Release connections; most providers hold none."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (only the delta-seconds form is worth honouring)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
