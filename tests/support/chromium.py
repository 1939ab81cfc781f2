"""Debian's headless Chromium for tests/browser, driven by Playwright (no `playwright install`)."""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "needs_chromium"]

CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# for a module's `pytestmark`
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
)
