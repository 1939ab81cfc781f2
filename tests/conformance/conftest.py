"""Fixtures for driving the service with the official Vonage Python SDK, unmodified.

The only change from talking to Vonage is the base URL: `api_host` points at the test stack
(the SDK always builds `https://{api_host}{path}`), and `requests` trusts the stack's
self-signed certificate through REQUESTS_CA_BUNDLE, which the `stack` fixture exports.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from vonage import Auth, HttpClientOptions, Vonage
from vonage_verify import Verify

from tests.support.client import TestApp
from tests.support.processes import Stack


@pytest.fixture
def make_sdk(stack: Stack) -> Callable[[Auth], Vonage]:
    """An official SDK client for `auth`, aimed at the test stack instead of api.nexmo.com."""

    def create(auth: Auth) -> Vonage:
        # max_retries=0: a failure must surface at once, never as a silently repeated POST
        return Vonage(auth, HttpClientOptions(api_host=stack.host, max_retries=0, timeout=10))

    return create


@pytest.fixture
def vonage_client(make_sdk: Callable[[Auth], Vonage], app: TestApp) -> Vonage:
    return make_sdk(Auth(application_id=app.application_id, private_key=app.private_key_path))


@pytest.fixture
def verify(vonage_client: Vonage) -> Verify:
    return vonage_client.verify


def virtual_operator_number(outcome: str) -> str:
    """A fresh number in Vonage's 990 virtual-operator range with a known silent-auth outcome:
    ending even -> completed, odd -> user_rejected (never ...99, which means failed)."""
    last = random.choice("02468" if outcome == "completed" else "1357")
    return "990" + f"{random.randrange(10**6):06d}" + random.choice("012345678") + last


@pytest.fixture
def sa_even() -> str:
    return virtual_operator_number("completed")


@pytest.fixture
def sa_odd() -> str:
    return virtual_operator_number("user_rejected")
