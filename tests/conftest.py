"""Shared fixtures: one real stack (redis-server + serve + worker) per test session."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.client import TestApp, VonageApi, create_app
from tests.support.processes import Stack, running_stack
from tests.support.receiver import WebhookReceiver


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def own_receiver() -> Iterator[WebhookReceiver]:
    """A receiver for one test only: answers queued for it never reach another test's webhooks,
    and form posts never reach the session receiver, whose helpers parse JSON bodies."""
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as s:
        # the official SDKs speak HTTPS only; let `requests` trust our test certificate
        os.environ["REQUESTS_CA_BUNDLE"] = str(s.cert)
        yield s


@pytest.fixture
def db(stack: Stack) -> Iterator[redis.Redis]:
    """A client of the stack's redis-server, to look at what the service stored."""
    r = redis.Redis.from_url(stack.redis.url)
    yield r
    r.close()


@pytest.fixture
def make_app(stack: Stack, receiver: WebhookReceiver, tmp_path: Path) -> Callable[..., TestApp]:
    def create(status_url: str | None = None) -> TestApp:
        hook_path = f"/hooks/{uuid.uuid4().hex}"
        url = receiver.url(hook_path) if status_url is None else status_url
        return create_app(stack, "test", url, tmp_path, hook_path)

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
