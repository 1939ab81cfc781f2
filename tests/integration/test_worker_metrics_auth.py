"""A real `worker` process's metrics port asks for the same bearer token as the web /metrics
(VERIFY_METRICS_TOKEN): 401 without it or with another one, the registry with it (issue 14).
Without a token set, the port stays open, as /metrics does."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.processes import CLI, RedisServer, free_port, wait_until

TOKEN = "worker-scrape-token-7f3a"


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        return False
    return True


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("wm-redis"))
    server.start()
    yield server.url
    server.stop()


def _worker(
    redis_url: str, workdir: Path, token: str | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFY_")}
    env.update(
        {
            "VERIFY_REDIS_URL": redis_url,
            "VERIFY_SANDBOX": "true",
            "VERIFY_SECRET_KEY": "worker-metrics-test-secret-0123456789",
            "VERIFY_WORKER_METRICS_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if token is not None:
        env["VERIFY_METRICS_TOKEN"] = token
    with (workdir / "worker.log").open("ab") as log:
        proc = subprocess.Popen([*CLI, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: _answers(url) or proc.poll() is not None, timeout=30, what="metrics")
    except BaseException:
        proc.kill()
        raise
    assert proc.poll() is None, (workdir / "worker.log").read_text()
    return proc, url


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_the_worker_port_needs_the_scrape_token(redis_url: str, tmp_path: Path) -> None:
    proc, url = _worker(redis_url, tmp_path, TOKEN)
    try:
        bare = requests.get(url, timeout=5)
        assert bare.status_code == 401
        assert bare.headers["WWW-Authenticate"] == "Bearer"
        assert "verify_" not in bare.text
        for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "):
            assert requests.get(url, timeout=5, headers={"Authorization": wrong}).status_code == 401
        good = requests.get(url, timeout=5, headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code == 200
        assert good.headers["Content-Type"].startswith("text/plain")
        assert "verify_webhook_attempts" in good.text
    finally:
        _stop(proc)


def test_without_a_token_set_the_port_stays_open(redis_url: str, tmp_path: Path) -> None:
    proc, url = _worker(redis_url, tmp_path, None)
    try:
        resp = requests.get(url, timeout=5)
        assert resp.status_code == 200
        assert "verify_sends" in resp.text
    finally:
        _stop(proc)
