"""Providers know *how* a message leaves: the sandbox outbox, SMTP, or a carrier's API."""

from workers.providers.base import Provider, ProviderError
from workers.providers.registry import build_providers

__all__ = ["Provider", "ProviderError", "build_providers"]
