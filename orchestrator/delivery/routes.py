"""Where providers call back: delivery receipts, WhatsApp's subscription handshake, and the
keypad answer of a voice call that asks for a key before it reads the code.

`/providers/{name}/status` takes what provider `name` of the providers file sends: Twilio's
StatusCallback, Vonage's DLRs and Messages/Voice events, WhatsApp's status webhooks (GET: its
hub.challenge handshake). Each is authenticated the vendor's way before anything is read: a
forged one gets 403 and changes nothing. `/providers/{name}/gather` answers Twilio's <Gather>
action (TwiML) and Vonage's input eventUrl (NCCO).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from aiohttp import web
from pydantic import BaseModel

from orchestrator.delivery import twilio, vonage, whatsapp_cloud
from orchestrator.delivery.receipts import BadReceipt, ForgedReceipt, Receipt, ReceiptRequest
from orchestrator.engine import receipts
from orchestrator.http.keys import DELIVERY, SERVICES

__all__ = ["setup_routes"]

log = logging.getLogger("orchestrator.receipts")

_Reader = Callable[[BaseModel, ReceiptRequest], Sequence[Receipt]]
_Gather = Callable[[BaseModel, ReceiptRequest, Callable[[str], str]], str]

# kind -> how its receipts are read; kinds without HTTP receipts (smpp: in-band) are absent
_READERS: dict[type[BaseModel], _Reader] = {
    twilio.TwilioConfig: twilio.read_receipts,  # type: ignore[dict-item]
    vonage.VonageConfig: vonage.read_receipts,  # type: ignore[dict-item]
    whatsapp_cloud.WhatsAppCloudConfig: whatsapp_cloud.read_receipts,  # type: ignore[dict-item]
}
# kind -> (how a gather callback is answered, its content type)
_GATHERS: dict[type[BaseModel], tuple[_Gather, str]] = {
    twilio.TwilioConfig: (twilio.answer_gather, "text/xml"),  # type: ignore[dict-item]
    vonage.VonageConfig: (vonage.answer_gather, "application/json"),  # type: ignore[dict-item]
}


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


async def _framework_free(request: web.Request) -> ReceiptRequest:
    settings = request.app[SERVICES].settings
    body = await request.read() if request.can_read_body else b""
    return ReceiptRequest(
        method=request.method,
        # as the vendor called it: what Twilio signs is this URL
        url=settings.public_url.rstrip("/") + request.raw_path,  # path and query, as sent
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query),
        body=body,
    )


def _config(request: web.Request) -> tuple[str, BaseModel] | None:
    name = request.match_info["name"]
    config = request.app[DELIVERY].providers.get(name)
    return (name, config) if config is not None else None


async def status(request: web.Request) -> web.Response:
    found = _config(request)
    reader = _READERS.get(type(found[1])) if found is not None else None
    if found is None or reader is None:
        return _text(404, "no such provider takes receipts here")
    name, config = found
    incoming = await _framework_free(request)
    try:
        if (
            request.method == "GET"
            and isinstance(config, whatsapp_cloud.WhatsAppCloudConfig)
            and "hub.mode" in incoming.query
        ):
            challenge = whatsapp_cloud.answer_challenge(config, incoming.query)
            return web.Response(status=200, text=challenge, content_type="text/plain")
        found_receipts = reader(config, incoming)
    except ForgedReceipt as exc:
        log.warning("receipt for provider %s refused: %s", name, exc)
        return _text(403, "signature does not verify")
    except BadReceipt as exc:
        return _text(400, f"not a receipt: {exc}"[:200])
    services = request.app[SERVICES]
    for receipt in found_receipts:
        await receipts.apply(services.store, services.tools, name, receipt)
    return web.Response(status=204)


async def gather(request: web.Request) -> web.Response:
    found = _config(request)
    answer = _GATHERS.get(type(found[1])) if found is not None else None
    if found is None or answer is None:
        return _text(404, "no such provider gathers keys here")
    name, config = found
    incoming = await _framework_free(request)
    respond, content_type = answer
    try:
        body = respond(config, incoming, request.app[SERVICES].tools.unseal)
    except ForgedReceipt as exc:
        log.warning("gather callback for provider %s refused: %s", name, exc)
        return _text(403, "signature does not verify")
    except BadReceipt as exc:
        return _text(400, f"not a gather callback: {exc}"[:200])
    return web.Response(status=200, text=body, content_type=content_type)


def setup_routes(app: web.Application) -> None:
    for method in ("GET", "POST"):
        app.router.add_route(method, "/providers/{name}/status", status)
        app.router.add_route(method, "/providers/{name}/gather", gather)
