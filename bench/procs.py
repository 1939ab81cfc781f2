"""Subprocesses the bench owns. Each is stopped at the end, on errors and on Ctrl-C too."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
from pathlib import Path

__all__ = ["BenchError", "Procs", "free_port"]


class BenchError(RuntimeError):
    """The bench cannot go on (a process died, a service never came up, ...)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: SIGTERM the child if the bench itself is killed (-9) before it could clean up."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Procs:
    """Spawns named processes with logs in `workdir`, and stops them in reverse order."""

    def __init__(self, workdir: Path, cwd: Path) -> None:
        self.workdir = workdir
        self.cwd = cwd
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # own session: a Ctrl-C on the terminal reaches only the bench, which then stops
                # the children in order (web and worker before Redis)
                start_new_session=True,
                preexec_fn=_die_with_parent,  # the bench spawns before it starts any thread
            )
        self.running[name] = proc
        return proc

    def check_alive(self) -> None:
        for name, proc in self.running.items():
            if proc.poll() is not None:
                raise BenchError(
                    f"{name} exited with {proc.returncode}; last log lines:\n{self.log_tail(name)}"
                )

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM everything (newest first), wait, then SIGKILL whatever still runs."""
        order = list(reversed(self.running.items()))
        for _, proc in order:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for _, proc in order:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        self.running.clear()
