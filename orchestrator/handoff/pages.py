"""The handoff's HTML: self-contained pages (inline CSS and JS under a per-response nonce, an
inline SVG QR code), localised, and usable with a keyboard, a screen reader and no colour."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from html import escape
from typing import Any

import segno
from aiohttp import web

from orchestrator.handoff import texts

__all__ = ["desktop_page", "done_page", "not_found_page", "phone_page", "qr_svg"]

_STYLE = """
:root{color-scheme:light dark;font-family:system-ui,-apple-system,"Segoe UI",sans-serif}
body{margin:0;padding:1.5rem;line-height:1.5;max-width:40rem;margin-inline:auto}
h1{font-size:1.6rem;margin:0 0 .75rem}
.qr{display:block;background:#fff;padding:8px;border:1px solid #767676;margin:1rem 0;
width:min(100%,280px);height:auto;aspect-ratio:1}
button{font:inherit;font-size:1.1rem;padding:.8rem 1.4rem;border:2px solid currentColor;
border-radius:.5rem;background:#0b57d0;color:#fff;cursor:pointer;min-height:48px}
button[disabled]{background:#555;cursor:not-allowed}
button:focus-visible{outline:3px solid #e37400;outline-offset:3px}
.big{width:100%;font-size:1.3rem;padding:1.2rem}
.status{border:2px solid currentColor;border-radius:.5rem;padding:.75rem 1rem;margin:1rem 0;
font-weight:600}
.status::before{content:"\\25CC\\00a0"}
[data-state=verified] .status::before{content:"\\2713\\00a0"}
[data-state=failed] .status::before,[data-state=ended] .status::before,
[data-state=fallback] .status::before{content:"\\2717\\00a0"}
.note{min-height:1.5em}
body:not([data-state=waiting]) .qr,body:not([data-state=waiting]) #sms{display:none}
"""

_DESKTOP_JS = """
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("handoff-config").textContent);
  var status = document.getElementById("status");
  var note = document.getElementById("sms-note");
  var sms = document.getElementById("sms");
  var finished = false, source = null, timer = null;
  function stop() {
    finished = true;
    if (source) { source.close(); source = null; }
    if (timer) { clearInterval(timer); timer = null; }
  }
  function resume(s) {
    if (s.redirect) { window.location.assign(s.redirect); return; }
    var message = {type: "verify-handoff", request_id: s.request_id, status: "verified"};
    if (s.code) { message.code = s.code; }
    var target = window.opener || (window.parent !== window ? window.parent : null);
    if (target) { target.postMessage(message, cfg.origin); }
    document.dispatchEvent(new CustomEvent("verify-handoff", {detail: message}));
  }
  function show(s) {
    if (finished) { return; }
    document.body.setAttribute("data-state", s.state);
    status.textContent = cfg.texts[s.state] || cfg.texts.waiting;
    if (s.state === "waiting") { return; }
    stop();
    sms.disabled = true;
    if (s.state === "verified") { resume(s); }
  }
  function poll() {
    fetch(cfg.status, {cache: "no-store", credentials: "omit"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s) { show(s); } })
      .catch(function () {});
  }
  function fallBack() {
    if (!finished && !timer) { timer = setInterval(poll, 2000); poll(); }
  }
  if (window.EventSource) {
    source = new EventSource(cfg.events);
    source.addEventListener("status", function (e) { show(JSON.parse(e.data)); });
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) { source = null; fallBack(); }
    };
  } else {
    fallBack();
  }
  sms.addEventListener("click", function () {
    sms.disabled = true;
    fetch(cfg.sms, {method: "POST", credentials: "omit"}).then(function (r) {
      if (r.status === 202) {
        note.textContent = cfg.texts.sms_sent;
        return r.json().then(function (b) { sms.disabled = finished || b.remaining <= 0; });
      }
      note.textContent = r.status === 429 ? cfg.texts.sms_limit : cfg.texts.failed;
      sms.disabled = r.status === 429 || finished;
    }).catch(function () { sms.disabled = finished; });
  });
})();
"""


def _said(t: Mapping[str, str], state: str, locale: str) -> str:
    """A state's sentence; a fallback says both that the phone failed and what comes next."""
    if state == "fallback":
        space = "" if locale.split("-", 1)[0] in ("ja", "zh") else " "
        return f"{t['failed']}{space}{t['fallback']}"
    return t.get(state, t["waiting"])


def _lang(locale: str) -> tuple[str, str]:
    """BCP 47 tag and text direction of a catalogue locale ("pt-br" -> "pt-BR", "ltr")."""
    language, _, region = locale.partition("-")
    tag = f"{language}-{region.upper()}" if region else language
    return tag, "rtl" if language in texts.RTL_LANGUAGES else "ltr"


def _csp(nonce: str, *, framable: bool) -> str:
    """Nothing but this response's own inline code and same-origin calls; the desktop page may
    be framed (it posts its result to the parent), the phone pages may not."""
    parts = [
        "default-src 'none'",
        f"script-src 'nonce-{nonce}'",
        f"style-src 'nonce-{nonce}'",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
    ]
    if not framable:
        parts.append("frame-ancestors 'none'")
    return "; ".join(parts)


def _page(
    locale: str,
    title: str,
    body: str,
    *,
    state: str,
    script: str = "",
    framable: bool = False,
    status: int = 200,
) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    tag, direction = _lang(locale)
    js = f'<script nonce="{nonce}">{script}</script>' if script else ""
    html = (
        f'<!doctype html><html lang="{tag}" dir="{direction}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f'<title>{escape(title)}</title><style nonce="{nonce}">{_STYLE}</style></head>'
        f'<body data-state="{escape(state)}"><main>{body}</main>{js}</body></html>'
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": _csp(nonce, framable=framable),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


def qr_svg(url: str, label: str) -> str:
    """The URL as an inline SVG QR code (medium error correction), named for screen readers."""
    svg = segno.make(url, error="m").svg_inline(
        scale=8,
        title=label,
        svgclass="qr",
        lineclass=None,
        dark="#000",
        light="#fff",
        omitsize=True,  # a viewBox instead: the CSS sizes it without cropping
    )
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)


def _config_json(value: Mapping[str, Any]) -> str:
    """JSON for a <script type="application/json"> block: nothing in it can close the tag."""
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def desktop_page(
    locale: str,
    *,
    phone_url: str,
    events_url: str,
    status_url: str,
    sms_url: str,
    origin: str,
    state: str,
    sms_left: int,
) -> web.Response:
    t = texts.for_locale(locale)
    config = {
        "events": events_url,
        "status": status_url,
        "sms": sms_url,
        "origin": origin,
        "texts": {
            k: _said(t, k, locale) for k in ("waiting", "verified", "failed", "fallback", "ended")
        }
        | {"sms_sent": t["sms_sent"], "sms_limit": t["sms_limit"]},
    }
    disabled = " disabled" if state != "waiting" or sms_left <= 0 else ""
    body = (
        f'<h1 id="title">{escape(t["title"])}</h1>'
        f'<p id="intro">{escape(t["intro"])}</p>'
        f"{qr_svg(phone_url, t['qr_label'])}"
        f'<p><button type="button" id="sms"{disabled}>{escape(t["sms_button"])}</button></p>'
        '<p id="sms-note" class="note" role="status" aria-live="polite"></p>'
        f'<h2 id="status-label">{escape(t["status_label"])}</h2>'
        '<p id="status" class="status" role="status" aria-live="polite" aria-atomic="true"'
        f' aria-labelledby="status-label">{escape(_said(t, state, locale))}</p>'
        '<script type="application/json" id="handoff-config">'
        f"{_config_json(config)}</script>"
    )
    return _page(locale, t["title"], body, state=state, script=_DESKTOP_JS, framable=True)


def phone_page(locale: str, *, check_url: str, marker: str, state: str) -> web.Response:
    """One button: a top-level GET of the check URL (operators redirect across origins, which
    a fetch could not follow), with the handoff marker so the last hop ends on the done page."""
    t = texts.for_locale(locale)
    if state == "waiting":
        action = (
            f'<p id="intro">{escape(t["phone_intro"])}</p>'
            f'<form method="get" action="{escape(check_url)}">'
            f'<input type="hidden" name="handoff" value="{escape(marker)}">'
            f'<button type="submit" class="big" id="verify">{escape(t["phone_button"])}</button>'
            "</form>"
        )
    else:
        action = (
            f'<p id="status" class="status" role="status">{escape(_said(t, state, locale))}</p>'
        )
    body = f'<h1 id="title">{escape(t["phone_title"])}</h1>{action}'
    return _page(locale, t["phone_title"], body, state=state)


def done_page(locale: str, *, state: str) -> web.Response:
    """What happened, and back to the computer; never the code (that is the desktop's)."""
    t = texts.for_locale(locale)
    said = _said(t, state if state != "waiting" else "failed", locale)
    body = (
        f'<h1 id="title">{escape(t["phone_title"])}</h1>'
        f'<p id="status" class="status" role="status" aria-live="polite">{escape(said)}</p>'
        f'<p id="back">{escape(t["back"])}</p>'
    )
    return _page(locale, t["phone_title"], body, state=state)


def not_found_page() -> web.Response:
    body = '<h1 id="title">Not found</h1><p>This link is not valid, or it has expired.</p>'
    return _page("en-us", "Not found", body, state="ended", status=404)
