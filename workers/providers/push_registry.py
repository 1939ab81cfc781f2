"""The push provider named by `settings.push_provider`, and the one that routes by platform."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import Redis

from orchestrator.settings import Settings
from workers.providers.push_base import PushDeliveryError, PushMessage, PushProvider

if TYPE_CHECKING:
    import aiohttp

__all__ = ["PUSH_PROVIDERS", "PlatformRouter", "build_push_provider"]

PUSH_PROVIDERS = ("sandbox", "fcm", "apns", "fcm+apns")


class PlatformRouter(PushProvider):
    """FCM tokens to FCM, APNs device tokens to APNs; "none" devices get no push."""

    name = "fcm+apns"

    def __init__(self, fcm: PushProvider | None, apn: PushProvider | None) -> None:
        self._by_platform = {"fcm": fcm, "apn": apn}

    async def send(self, message: PushMessage) -> None:
        if message.notification_platform == "none":
            return
        provider = self._by_platform.get(message.notification_platform)
        if provider is None:
            raise PushDeliveryError(
                f"no push provider for {message.notification_platform!r} devices",
                permanent=True,
                reason="WRONG_PLATFORM",
            )
        await provider.send(message)

    async def close(self) -> None:
        for provider in self._by_platform.values():
            if provider is not None:
                await provider.close()


def build_push_provider(
    settings: Settings, redis: Redis, session: aiohttp.ClientSession | None = None
) -> PushProvider | None:
    """The configured provider; None when it is "sandbox" and the sandbox is off (no push).

    FCM shares `session` when given, else owns one. The worker's webhook session refuses
    private addresses, so an `fcm_base_url` on a private network needs FCM's own session.
    """
    name = settings.push_provider
    if name == "sandbox":
        if not settings.sandbox:
            return None
        from workers.providers.push_sandbox import SandboxPushProvider

        return SandboxPushProvider(redis)
    if name == "fcm":
        return _fcm(settings, session)
    if name == "apns":
        return _apns(settings)
    if name == "fcm+apns":
        return PlatformRouter(fcm=_fcm(settings, session), apn=_apns(settings))
    raise ValueError(f"unknown push provider {name!r}; known: {', '.join(PUSH_PROVIDERS)}")


def _fcm(settings: Settings, session: aiohttp.ClientSession | None) -> PushProvider:
    from workers.providers.push_fcm import FcmProvider

    return FcmProvider.from_settings(settings, session)


def _apns(settings: Settings) -> PushProvider:
    from workers.providers.push_apns import ApnsProvider

    return ApnsProvider.from_settings(settings)
