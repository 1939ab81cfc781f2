"""The web process's current workflows file: loaded at start, re-read on SIGHUP (and, when
`workflows_poll_seconds` is set, as `dev` does, whenever the file's mtime changes).

A re-read swaps the whole checked file in one assignment, so a request that took `current`
keeps using the file it took; a file that no longer checks is not swapped in (the old one
stays, and the faults are logged). Verifications never look here again after their start:
their steps, texts and timeouts were fixed then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from orchestrator.settings import Settings
from orchestrator.workflows.file import WorkflowsFile, WorkflowsFileError, load_workflows

__all__ = ["WORKFLOWS", "Registry", "load_for", "setup"]

log = logging.getLogger("orchestrator.workflows")


def load_for(settings: Settings) -> WorkflowsFile:
    """The file `settings` name, checked (the empty file when none is set); raises
    WorkflowsFileError (one line) so `serve`/`worker` refuse to start."""
    if settings.workflows_file is None:
        return WorkflowsFile()
    return load_workflows(settings.workflows_file)  # relative: to the working directory


class Registry:
    def __init__(self, path: Path | None, current: WorkflowsFile) -> None:
        self.path = path
        self.current = current
        self._mtime = self._stat()

    def _stat(self) -> float | None:
        if self.path is None:
            return None
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def reload(self) -> bool:
        """Re-read the file; True when the new one was swapped in."""
        if self.path is None:
            return False
        self._mtime = self._stat()
        try:
            fresh = load_workflows(self.path)
        except WorkflowsFileError as exc:
            log.warning("workflows file not reloaded, the old one stays: %s", exc)
            return False
        self.current = fresh  # one assignment: readers see the old file or the new, whole
        log.info(
            "workflows file reloaded: %d workflows, %d templates",
            len(fresh.workflows),
            len(fresh.templates),
        )
        return True

    def changed(self) -> bool:
        return self._stat() != self._mtime


WORKFLOWS = web.AppKey("workflows", Registry)


def setup(app: web.Application, settings: Settings) -> None:
    """Load the file (raising WorkflowsFileError when it doesn't check) and keep it current
    while `app` runs."""
    registry = app[WORKFLOWS] = Registry(settings.workflows_file, load_for(settings))

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if registry.path is None:
            yield
            return
        loop = asyncio.get_running_loop()
        hup = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # only the main thread's loop may own signals (tests run apps in other threads)
            loop.add_signal_handler(signal.SIGHUP, registry.reload)
            hup = True
        poll = (
            asyncio.create_task(_poll(registry, settings.workflows_poll_seconds))
            if settings.workflows_poll_seconds > 0
            else None
        )
        yield
        if poll is not None:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)

    app.cleanup_ctx.append(ctx)


async def _poll(registry: Registry, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if registry.changed():
            registry.reload()
