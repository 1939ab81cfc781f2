"""Shared fixtures: one real stack (redis-server + serve + worker) per test session."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.client import TestApp, VonageApi
from tests.support.processes import Stack, build_stack
from tests.support.receiver import WebhookReceiver


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = build_stack(tmp_path_factory.mktemp("stack"))
    try:
        s.start(workers=1)
        # the official SDKs speak HTTPS only; let `requests` trust our test certificate
        os.environ["REQUESTS_CA_BUNDLE"] = str(s.cert)
        yield s
    finally:
        s.stop()
        s.redis.stop()


@pytest.fixture
def make_app(stack: Stack, receiver: WebhookReceiver, tmp_path: Path) -> Callable[..., TestApp]:
    def create(status_url: str | None = None) -> TestApp:
        hook_path = f"/hooks/{uuid.uuid4().hex}"
        url = receiver.url(hook_path) if status_url is None else status_url
        key_path = tmp_path / f"{uuid.uuid4().hex}.key"
        data = stack.cli(
            "apps",
            "create",
            "--name",
            "test",
            "--status-url",
            url,
            "--private-key-out",
            str(key_path),
        )
        assert isinstance(data, dict)
        return TestApp(
            application_id=str(data["application_id"]),
            api_key=str(data["api_key"]),
            api_secret=str(data["api_secret"]),
            signature_secret=str(data["signature_secret"]),
            webhook_secret=str(data["webhook_secret"]),
            private_key_path=str(data["private_key_path"]),
            hook_path=hook_path,
        )

    return create


@pytest.fixture
def app(make_app: Callable[..., TestApp]) -> TestApp:
    return make_app()


@pytest.fixture
def api(stack: Stack, app: TestApp) -> VonageApi:
    return VonageApi(stack.url, app, verify=str(stack.cert))


@pytest.fixture
def number() -> str:
    """A fresh UK drama-range number per test, so no two tests share a destination."""
    return "4477009" + f"{random.randrange(10**5):05d}"
