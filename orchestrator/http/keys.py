"""The web application's typed state: the process's shared services and its settings."""

from __future__ import annotations

from aiohttp import web

from orchestrator.services import Services
from orchestrator.settings import Settings

__all__ = ["SERVICES", "SETTINGS"]

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
