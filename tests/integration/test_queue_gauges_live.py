"""The autoscaling gauges on the web /metrics with real processes (issue 14): a worker counts
itself live and holds nothing when idle; a failing webhook waits for its retry; with the worker
killed (kill -9), starts pile up as backlog with a growing lag, and a new worker drains them."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.security.helpers import metric_value
from tests.support.client import TestApp, VonageApi, create_app
from tests.support.processes import Stack, running_stack, trusted_by_requests, wait_until
from tests.support.receiver import WebhookReceiver


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # a failed webhook's next attempt is 30 s away: long enough to be seen waiting
    with running_stack(
        tmp_path_factory.mktemp("gauges"), VERIFY_WEBHOOK_RETRY_SCHEDULE="[30, 30]"
    ) as s:
        with trusted_by_requests(s):
            yield s


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


def _gauges(stack: Stack) -> dict[str, float]:
    text = requests.get(stack.url + "/metrics", verify=str(stack.cert), timeout=10).text
    names = (
        "verify_queue_up",
        "verify_queue_due_jobs",
        "verify_queue_lag_seconds",
        "verify_queue_wait_seconds",
        "verify_queue_deferred_jobs",
        "verify_jobs_in_progress",
        "verify_workers",
        "verify_webhooks_awaiting_retry",
    )
    return {name: metric_value(text, name) for name in names}


def _app(stack: Stack, receiver: WebhookReceiver, tmp_path: Path) -> TestApp:
    return create_app(stack, "gauges", receiver.url("/g"), tmp_path, "/g")


def test_idle_worker_and_a_webhook_awaiting_retry(
    stack: Stack, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    api = VonageApi(stack.url, _app(stack, receiver, tmp_path), verify=str(stack.cert))
    receiver.responses.extend([503] * 20)
    started = api.start({"brand": "ACME", "workflow": [{"channel": "sms", "to": "447700900321"}]})
    assert started.status_code == 202, started.text
    request_id = started.json()["request_id"]
    code = api.wait_message("447700900321", request_id)["code"]
    assert api.check(request_id, code).status_code == 200

    def retrying() -> dict[str, float] | None:
        g = _gauges(stack)
        return g if g["verify_webhooks_awaiting_retry"] >= 1 else None

    g = wait_until(retrying, timeout=20, interval=0.2, what="a webhook awaiting its retry")
    assert g["verify_queue_up"] == 1
    assert g["verify_workers"] == 1
    assert g["verify_queue_deferred_jobs"] >= 1  # the retry itself
    settled = wait_until(
        lambda: (lambda g: g if g["verify_queue_due_jobs"] == 0 else None)(_gauges(stack)),
        timeout=10,
        interval=0.1,
        what="nothing due",
    )
    assert settled["verify_jobs_in_progress"] == 0
    assert settled["verify_queue_lag_seconds"] == settled["verify_queue_wait_seconds"] == 0


def test_a_killed_worker_leaves_a_growing_backlog_a_new_one_drains(
    stack: Stack, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    api = VonageApi(
        stack.url, _app(stack, receiver, tmp_path), verify=str(stack.cert), auth="basic"
    )
    (worker,) = [w for w in stack.workers if w.poll() is None]
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    ids = []
    for n in range(3):
        resp = api.start(
            {"brand": "ACME", "workflow": [{"channel": "sms", "to": f"44770090040{n}"}]}
        )
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["request_id"])

    def lagging() -> dict[str, float] | None:
        g = _gauges(stack)
        return g if g["verify_queue_lag_seconds"] >= 1.0 else None

    g = wait_until(lagging, timeout=10, interval=0.2, what="the lag to grow")
    assert g["verify_queue_due_jobs"] >= 3
    assert g["verify_queue_wait_seconds"] >= 1.0  # no worker holds them
    assert g["verify_jobs_in_progress"] == 0  # the dead worker held none: nothing claimed them

    stack.start_worker(len(stack.workers))
    for n, request_id in enumerate(ids):
        api.wait_message(f"44770090040{n}", request_id, timeout=20)
    drained = wait_until(
        lambda: (lambda g: g if g["verify_queue_due_jobs"] == 0 else None)(_gauges(stack)),
        timeout=15,
        interval=0.1,
        what="the backlog drained",
    )
    assert drained["verify_queue_lag_seconds"] == drained["verify_queue_wait_seconds"] == 0
