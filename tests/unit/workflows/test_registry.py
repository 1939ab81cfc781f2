"""The per-process registry: a re-read swaps the whole file (a holder of the old one keeps it),
a file that stopped checking is not swapped in, and with `workflows_poll_seconds` (as in `dev`)
a changed mtime is picked up without a signal."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiohttp import web

from orchestrator.settings import Settings
from orchestrator.workflows.file import WorkflowsFileError
from orchestrator.workflows.registry import WORKFLOWS, Registry, load_for, setup

ONE = '[workflows.login]\nsteps = [{ channel = "sms" }]\n'
TWO = '[workflows.login]\nsteps = [{ channel = "voice" }]\n[workflows.other]\nsteps = [{ channel = "sms" }]\n'


def test_reload_swaps_whole_files_and_keeps_the_old_on_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(ONE)
    registry = Registry(path, load_for(Settings(workflows_file=path)))
    held = registry.current
    path.write_text(TWO)
    assert registry.reload()
    assert set(registry.current.workflows) == {"login", "other"}
    assert held.workflows["login"].steps[0].channel.value == "sms"  # a holder keeps its file
    fresh = registry.current
    path.write_text('[workflows.login]\nsteps = [{ channel = "fax" }]\n')
    assert not registry.reload()
    assert registry.current is fresh


def test_no_file_is_the_empty_file_and_a_bad_one_refuses(tmp_path: Path) -> None:
    assert not load_for(Settings()).workflows
    bad = tmp_path / "bad.toml"
    bad.write_text("[workflows.a]\nsteps = 3\n")
    with pytest.raises(WorkflowsFileError, match=r"workflows\.a\.steps: required"):
        load_for(Settings(workflows_file=bad))


async def test_polling_picks_up_a_changed_file(tmp_path: Path, aiohttp_client: object) -> None:
    path = tmp_path / "w.toml"
    path.write_text(ONE)
    app = web.Application()
    setup(app, Settings(workflows_file=path, workflows_poll_seconds=0.05))
    client = await aiohttp_client(app)  # type: ignore[operator]
    assert client is not None
    registry = app[WORKFLOWS]
    path.write_text(TWO)
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))  # a coarse clock still sees a change
    for _ in range(100):
        if "other" in registry.current.workflows:
            break
        await asyncio.sleep(0.02)
    assert "other" in registry.current.workflows
