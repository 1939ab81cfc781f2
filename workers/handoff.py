"""The desktop handoff's "text me a link": one SMS with the phone page's URL.

The web process queues `send_handoff_link(request_id, n)` (orchestrator.handoff.routes, n = 1
or 2); this job composes the localised text and sends it through the SMS route, as a code step
is sent (workers.dispatch), under its own message id "<request id>:handoff:<n>", so a re-run
job is deduplicated by the providers and never sends the link twice.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.domain.models import Channel, Status, StepStatus, Verification
from orchestrator.handoff import texts, token
from workers.channels.base import OutboundMessage
from workers.dispatch import RouteExhausted
from workers.tasks import WorkerState

__all__ = ["compose_link", "send_handoff_link"]

log = logging.getLogger("workers.handoff")

# the step a receipt of the link maps to: none. A lost link (a "failed" delivery receipt) must
# not fail the silent-auth step, and a receipt for step -1 is stale to the state machine.
_NO_STEP = -1


def compose_link(v: Verification, n: int, phone_url: str) -> OutboundMessage | None:
    """The SMS to the silent-auth step's number, or None when there is no such step."""
    step = v.step if v.step is not None and v.step.channel is Channel.SILENT_AUTH else None
    if step is None:
        return None
    return OutboundMessage(
        id=f"{v.request_id}:handoff:{n}",
        tenant=v.account or v.tenant,
        request_id=v.request_id,
        channel="sms",
        to=step.to,
        sender=step.sender or v.brand,
        text=texts.sms_text(v.locale, v.brand, phone_url),
        code="",  # no code: the link carries the handoff token, the code goes to the desktop
        locale=v.locale,
    )


async def send_handoff_link(ctx: dict[str, Any], request_id: str, n: int) -> None:
    """Send the n-th link, unless the silent-auth step has ended meanwhile."""
    w = ctx["state"]
    assert isinstance(w, WorkerState)
    services = w.services
    loaded = await services.store.load(request_id)
    if loaded is None:
        return
    v, _ = loaded
    step = v.step
    if (
        v.status is not Status.PENDING
        or step is None
        or step.channel is not Channel.SILENT_AUTH
        or step.status is not StepStatus.PENDING
    ):
        return  # verified, failed over or ended: the link would lead nowhere
    settings = services.settings
    url = token.phone_url(settings.public_url, services.tools, request_id)
    message = compose_link(v, n, url)
    if message is None:
        return
    try:
        await w.dispatch(message, _NO_STEP)
    except RouteExhausted as exc:
        # the silent-auth step goes on: the user can still scan the QR code
        log.warning("handoff link %s for %s not sent: %s", n, request_id, str(exc)[:200])
