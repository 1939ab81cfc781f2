"""Prometheus metrics: one registry per process (no multiprocess mode).

The web process serves them on `GET /metrics` (orchestrator/http/metrics.py); a worker serves its own on
`VERIFY_WORKER_METRICS_PORT` when that is set. Labels are bounded: routes are the router's
templates ("/v2/verify/{request_id}"), never raw paths, and nothing carries a destination,
a code or a credential.

Conversion per channel is `verify_verifications_completed_total / verify_verifications_started_total`
(started counts the first channel of a workflow; completed counts the channel that completed).

The autoscaling gauges (`QueueGauges`: backlog, lag, deferred jobs, jobs in progress, webhooks
awaiting retry) are not kept in this process: the web `/metrics` handler reads them from Redis
at each scrape and renders them with `queue_exposition`. Every web process reports the same
deployment-wide figures, so aggregate them with max(), not sum().

The worker's port asks for the same bearer token as `/metrics` when `VERIFY_METRICS_TOKEN` is
set (`serve_worker_metrics(..., token=...)`): 401 without it.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from pydantic import SecretStr

from orchestrator.domain.models import Verification

__all__ = [
    "AUTH_THROTTLED",
    "COMPLETED",
    "DELIVERIES",
    "DELIVERY_LATENCY",
    "FRAUD_BLOCKS",
    "FRAUD_BYPASSES",
    "HTTP_LATENCY",
    "HTTP_REQUESTS",
    "SENDS",
    "SIM_SWAP_CHECKS",
    "STARTED",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_EXHAUSTED",
    "QueueGauges",
    "queue_exposition",
    "serve_worker_metrics",
    "started",
]

log = logging.getLogger("orchestrator.metrics")

HTTP_REQUESTS = Counter(
    "verify_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "verify_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STARTED = Counter(
    "verify_verifications_started",
    "Verifications started, by dialect and first channel",
    ["dialect", "channel"],
)
COMPLETED = Counter(
    "verify_verifications_completed",
    "Verifications completed (the user proved the destination), by dialect and channel",
    ["dialect", "channel"],
)
FRAUD_BLOCKS = Counter(
    "verify_fraud_blocks",
    "Starts refused by the fraud guard, by dialect and reason (number, ip, prefix, geo)",
    ["dialect", "reason"],
)
FRAUD_BYPASSES = Counter(
    "verify_fraud_bypasses",
    "Starts that skipped the adaptive prefix budget (fraud_check=false / RiskCheck=disable)",
    ["dialect"],
)
AUTH_THROTTLED = Counter(
    "verify_auth_throttled",
    "Basic-auth requests answered 429 because of earlier failures, by scope (user, ip)",
    ["scope"],
)
SENDS = Counter(
    "verify_sends",
    "Step sends attempted by the worker, by channel, provider and outcome (sent, failed)",
    ["channel", "provider", "outcome"],
)
# from providers' delivery receipts; country is the ISO region of the number ("ZZ" unknown)
DELIVERIES = Counter(
    "verify_deliveries",
    "Messages by the fate their provider's receipts report (sent, delivered, failed), once per "
    "message and status",
    ["channel", "provider", "country", "status"],
)
DELIVERY_LATENCY = Histogram(
    "verify_delivery_latency_seconds",
    "From the provider accepting a message to its receipt saying delivered",
    ["channel", "provider"],
    buckets=(0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300),
)
SIM_SWAP_CHECKS = Counter(
    "verify_sim_swap_checks",
    "SIM-swap gate decisions before a code send: swapped (refused), clear, or the operator "
    "could not answer and the gate let the send go (unavailable_open) or refused it "
    "(unavailable_closed); cached answers count as well",
    ["outcome"],
)
WEBHOOK_ATTEMPTS = Counter(
    "verify_webhook_attempts",
    "Webhook delivery attempts, by outcome (delivered, retry, gone, dropped, fanout)",
    ["outcome"],
)
WEBHOOK_EXHAUSTED = Counter(
    "verify_webhook_exhausted",
    "Webhook messages whose every retry failed",
)


def started(v: Verification) -> None:
    STARTED.labels(v.dialect, v.steps[0].channel.value).inc()


@dataclass(frozen=True, slots=True)
class QueueGauges:
    """What the deployment's queue looks like at one scrape (orchestrator/http/metrics.py)."""

    due: int  # jobs due now, waiting for a worker or running (arq keeps them queued till done)
    lag_seconds: float  # age of the oldest due job (running ones too); 0 when none is due
    wait_seconds: float  # age of the oldest due job no worker holds yet; 0 when none waits
    deferred: int  # jobs due later: step timeouts, webhook retries, challenge expiries
    in_progress: int  # jobs the live workers hold (claimed, end not yet written)
    workers: int  # workers whose jobs count is live (they claimed within their TTL)
    webhooks_awaiting_retry: int  # webhook messages whose next attempt is scheduled


_QUEUE_SERIES: tuple[tuple[str, str, str], ...] = (
    (
        "verify_queue_due_jobs",
        "due",
        "Jobs due now: waiting for a worker or running (a job stays queued until its end is "
        "written); waiting = due - verify_jobs_in_progress",
    ),
    (
        "verify_queue_lag_seconds",
        "lag_seconds",
        "Age of the oldest due job, running ones included (0: none is due)",
    ),
    (
        "verify_queue_wait_seconds",
        "wait_seconds",
        "Age of the oldest due job no worker holds yet (0: none waits): the scaling signal",
    ),
    (
        "verify_queue_deferred_jobs",
        "deferred",
        "Jobs due later (step timeouts, webhook retries, challenge expiries)",
    ),
    (
        "verify_jobs_in_progress",
        "in_progress",
        "Jobs held by live workers (claimed, end not yet written)",
    ),
    ("verify_workers", "workers", "Workers that claimed or ended jobs within their TTL"),
    (
        "verify_webhooks_awaiting_retry",
        "webhooks_awaiting_retry",
        "Webhook messages whose last attempt failed and whose next one is scheduled",
    ),
)


class _Snapshot:
    """A collector of one scrape's queue figures (a throwaway registry renders it)."""

    def __init__(self, gauges: QueueGauges | None) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "verify_queue_up",
            "1 when this scrape read the queue gauges from Redis, 0 when it could not",
            value=0 if self._gauges is None else 1,
        )
        if self._gauges is None:
            return
        for name, field, help_text in _QUEUE_SERIES:
            yield GaugeMetricFamily(name, help_text, value=float(getattr(self._gauges, field)))


def queue_exposition(gauges: QueueGauges | None) -> bytes:
    """The queue gauges in the Prometheus text format, to follow this process's own registry;
    None (Redis not readable) gives only `verify_queue_up 0`, so no stale figure is scraped."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(gauges))
    return generate_latest(registry)


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _bearer_guarded(app: Any, token: SecretStr | None) -> Any:
    """`app`, answering 401 unless `Authorization: Bearer <token>` (when a token is set)."""
    if token is None:
        return app
    expected = ("Bearer " + token.get_secret_value()).encode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        given = str(environ.get("HTTP_AUTHORIZATION", "")).encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
            )
            return [b"metrics need the scrape token\n"]
        result: Iterable[bytes] = app(environ, start_response)
        return result

    return guarded


def serve_worker_metrics(
    port: int, host: str = "0.0.0.0", *, token: SecretStr | None = None
) -> bool:
    """Expose this worker's metrics on `port` (a daemon thread, so a busy event loop still
    answers); with `token` (settings.metrics_token), only to `Authorization: Bearer <token>`,
    as `GET /metrics` does. False (logged) when the port is taken, e.g. by another worker on
    the same host."""

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        httpd = make_server(
            host,
            port,
            _bearer_guarded(make_wsgi_app(REGISTRY), token),
            Server,
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        log.warning("worker metrics not served on port %d: %s", port, exc.strerror or exc)
        return False
    threading.Thread(target=httpd.serve_forever, name="worker-metrics", daemon=True).start()
    log.info(
        "worker metrics on port %d%s", port, "" if token is None else ", scrape token required"
    )
    return True
