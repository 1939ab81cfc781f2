"""Prometheus metrics: one registry per process (no multiprocess mode).

The web process serves them on `GET /metrics` (orchestrator/http/metrics.py); a worker serves its own on
`VERIFY_WORKER_METRICS_PORT` when that is set. Labels are bounded: routes are the router's
templates ("/v2/verify/{request_id}"), never raw paths, and nothing carries a destination,
a code or a credential.

Conversion per channel is `verify_verifications_completed_total / verify_verifications_started_total`
(started counts the first channel of a workflow; completed counts the channel that completed).
"""

from __future__ import annotations

import logging

from prometheus_client import (
    Counter,
    Histogram,
    start_http_server,
)

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


def serve_worker_metrics(port: int, host: str = "0.0.0.0") -> bool:
    """Expose this worker's metrics on `port`; False (logged) when the port is taken, e.g. by
    another worker on the same host."""
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("worker metrics not served on port %d: %s", port, exc.strerror or exc)
        return False
    log.info("worker metrics on port %d", port)
    return True
