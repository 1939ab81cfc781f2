"""The web application's typed state: the process's shared services, settings and providers."""

from __future__ import annotations

from aiohttp import web

from orchestrator.delivery.providers_file import Delivery
from orchestrator.services import Services
from orchestrator.settings import Settings

__all__ = ["DELIVERY", "SERVICES", "SETTINGS"]

DELIVERY = web.AppKey("delivery", Delivery)
SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
