"""The Perl SMSC (tests/support/smsc.pl, Debian's Net::SMPP) as a subprocess for tests and bench.

`PerlSmsc(workdir).start()` picks a free port, waits for "listening <port>", and `log()` gives
the JSON line the SMSC wrote for every PDU it received. `stop()` kills its process group (the
SMSC forks a child per connection), `start()` again listens on the same port.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("smsc.pl")
SYSTEM_ID = "verify"
PASSWORD = "s3cret"  # 8 characters at most, as SMPP 3.4 allows


def unavailable() -> str | None:
    """Why the Perl SMSC can't run here (None when it can)."""
    perl = shutil.which("perl")
    if perl is None:
        return "perl is not installed"
    probe = subprocess.run(
        [perl, "-MNet::SMPP", "-MJSON::PP", "-e1"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return "Net::SMPP is not installed (apt-get install libnet-smpp-perl)"
    return None


class PerlSmsc:
    def __init__(
        self,
        workdir: Path,
        system_id: str = SYSTEM_ID,
        password: str = PASSWORD,
        enquire_seconds: int = 0,
    ) -> None:
        self.workdir = workdir
        self.enquire_seconds = enquire_seconds  # >0: the SMSC pings an idle ESME itself
        self.system_id = system_id
        self.password = password
        self.logfile = workdir / "smsc.jsonl"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> PerlSmsc:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logfile.touch()
        perl = shutil.which("perl") or "perl"
        with (self.workdir / "smsc.stderr").open("ab") as stderr:
            self.proc = subprocess.Popen(
                [
                    perl,
                    str(SCRIPT),
                    str(self.port),
                    self.system_id,
                    self.password,
                    str(self.logfile),
                    str(self.enquire_seconds),
                ],
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # its own process group: stop() reaches the forked children
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the Perl SMSC did not start: {self.stderr()[-500:]}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                line += os.read(self.proc.stdout.fileno(), 100)
        word, port = line.decode().split()
        assert word == "listening", line
        self.port = int(port)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def stderr(self) -> str:
        path = self.workdir / "smsc.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def log(self, cmd: str | None = None) -> list[dict[str, Any]]:
        """Every PDU the SMSC received so far (one dict each), or only those named `cmd`."""
        lines = [json.loads(x) for x in self.logfile.read_text().splitlines() if x.strip()]
        return [x for x in lines if cmd is None or x.get("cmd") == cmd]

    async def wait_for(
        self, cmd: str, count: int = 1, within: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll the log until it holds `count` PDUs named `cmd`; fail after `within` s (async:
        the provider under test needs the event loop meanwhile)."""
        deadline = time.monotonic() + within
        while True:
            found = self.log(cmd)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"the SMSC got {len(found)} {cmd}, wanted {count}")
            await asyncio.sleep(0.02)

    def __enter__(self) -> PerlSmsc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
