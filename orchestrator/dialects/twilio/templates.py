"""Twilio `GET /v2/Templates`: the account's verification templates (filter `FriendlyName`).

Twilio's API only lists templates; here they are the account's own (created with
`verify-orchestrator templates create`, or through the Vonage dialect's Templates API by an
application of the same account). A template's sid is `HJ` + its uuid's hex digits; its
`translations` are keyed by fragment locale, with the texts in Twilio's `{{code}}` spelling.
Errors answer in Twilio's shape whichever dialect the error middleware picks for this path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from orchestrator.dialects.twilio import errors as twilio_errors
from orchestrator.dialects.twilio.context import twilio_account
from orchestrator.dialects.twilio.forms import Form
from orchestrator.dialects.twilio.pages import page_body, page_params
from orchestrator.templates import rules, store

__all__ = ["setup_routes", "template_resource"]


def _tw_date(iso: str) -> str:
    """`2024-01-01T00:00:00.000Z` -> `2024-01-01T00:00:00Z`, the one form the SDK parses."""
    return iso[:19] + "Z"


def template_resource(t: store.Template, account_sid: str) -> dict[str, Any]:
    """A template as Twilio lists it. A locale with both an SMS and a voice fragment shows the
    SMS text (Twilio's translations carry one text per language)."""
    translations: dict[str, dict[str, Any]] = {}
    ordered = sorted(t.fragments, key=lambda f: (f.channel != "sms", f.created))
    first_locale = min(t.fragments, key=lambda f: f.created).locale if t.fragments else None
    for f in ordered:
        if f.locale in translations:
            continue
        translations[f.locale] = {
            "is_default_translation": f.locale == first_locale,
            "status": "approved",
            "locale": f.locale,
            "text": rules.twilio_form(f.text),
            "date_created": _tw_date(f.created),
            "date_updated": _tw_date(f.updated),
        }
    channels = [c for c in rules.CHANNELS if any(f.channel == c for f in t.fragments)]
    return {
        "sid": t.sid,
        "account_sid": account_sid,
        "friendly_name": t.name,
        "channels": channels,
        "translations": translations,
    }


async def _list(request: web.Request) -> web.Response:
    services, account = await twilio_account(request)
    form = Form(request.query)
    name = form.text("FriendlyName", max_len=64)
    page, size = page_params(request)
    found = await store.list_templates(services.redis, account)
    if name is not None:
        found = [t for t in found if t.name == name]
    items = [template_resource(t, account) for t in found[page * size : (page + 1) * size]]
    body = page_body(request, "templates", items, page, size, len(found))
    if name is not None:
        # the SDK follows these URLs verbatim: the filter must go on with them
        meta = body["meta"]
        suffix = "&" + urlencode({"FriendlyName": name})
        for key in ("first_page_url", "previous_page_url", "next_page_url", "url"):
            if meta[key] is not None:
                meta[key] += suffix
    return web.json_response(body)


async def list_templates(request: web.Request) -> web.StreamResponse:
    # the app's error middleware gives Twilio's shape to /v2/Services only: answer ours here
    return await twilio_errors.handle(request, _list)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v2/Templates", list_templates)
