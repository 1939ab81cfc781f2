"""Fixtures for the security tests: the guard stack and applications on it (see helpers)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.security.helpers import (
    AUTH_FAIL_IP_LIMIT,
    AUTH_FAIL_LIMIT,
    AUTH_FAIL_WINDOW,
    IP_LIMIT,
    METRICS_TOKEN,
    NUMBER_LIMIT,
    PREFIX_FLOOR,
    PREFIX_MULTIPLIER,
    TRUSTED_PROXIES,
)
from tests.support.client import TestApp, create_app
from tests.support.processes import Stack, free_port, running_stack
from tests.support.receiver import WebhookReceiver


@pytest.fixture(scope="session")
def guard_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("guard"),
        VERIFY_FRAUD_NUMBER_LIMIT=str(NUMBER_LIMIT),
        VERIFY_FRAUD_IP_LIMIT=str(IP_LIMIT),
        VERIFY_FRAUD_PREFIX_FLOOR=str(PREFIX_FLOOR),
        VERIFY_FRAUD_PREFIX_MULTIPLIER=str(PREFIX_MULTIPLIER),
        # one bucket for the whole run: no test straddles an hour boundary (the bucket
        # arithmetic itself is tested with explicit clocks in test_fraud_guard)
        VERIFY_FRAUD_PREFIX_BUCKET_SECONDS="100000000",
        VERIFY_AUTH_FAIL_LIMIT=str(AUTH_FAIL_LIMIT),
        VERIFY_AUTH_FAIL_IP_LIMIT=str(AUTH_FAIL_IP_LIMIT),
        VERIFY_AUTH_FAIL_WINDOW_SECONDS=str(AUTH_FAIL_WINDOW),
        VERIFY_WORKER_METRICS_PORT=str(free_port()),
        VERIFY_LOG_LEVEL="DEBUG",
        # a "load balancer" range that fresh_ip() never hands out (test_fraud_guard)
        VERIFY_TRUSTED_PROXIES=TRUSTED_PROXIES,
        VERIFY_METRICS_TOKEN=METRICS_TOKEN,
    ) as s:
        yield s


@pytest.fixture
def make_guard_app(
    guard_stack: Stack, receiver: WebhookReceiver, tmp_path: Path
) -> Callable[..., TestApp]:
    """An application on the guard stack; extra arguments go to `apps update` (fraud switches)."""

    def create(*update_args: str) -> TestApp:
        hook_path = f"/hooks/{uuid.uuid4().hex}"
        app = create_app(guard_stack, "guard", receiver.url(hook_path), tmp_path, hook_path)
        if update_args:
            guard_stack.cli("apps", "update", app.application_id, *update_args)
        return app

    return create
