"""The console's HTML: self-contained pages (inline CSS under a per-response nonce, no script,
no external asset), every value escaped; plain forms, so it works without JavaScript."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from html import escape
from urllib.parse import urlencode

from aiohttp import web

from orchestrator.console.queries import Detail, Filters, Message, Page, Row, WebhookMessage
from orchestrator.domain.models import Status, Verification

__all__ = ["detail_page", "error_page", "list_page", "login_page"]

_STYLE = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;
--ink:#1d2330;--mute:#5b6472;--line:#d9dde3;--bg:#f6f7f9;--accent:#0b57d0}
*{box-sizing:border-box}
body{margin:0;color:var(--ink);background:var(--bg);font-size:14px;line-height:1.45}
header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;align-items:center;
gap:1rem}
header h1{font-size:1.05rem;margin:0;font-weight:600}
header h1 a{color:#fff;text-decoration:none}
header .who{margin-left:auto;color:#c8ced8}
header form{margin:0}
header button{background:transparent;color:#fff;border:1px solid #8a93a3;padding:.2rem .7rem}
main{padding:1rem 1.2rem;max-width:90rem;margin:0 auto}
h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
a{color:var(--accent)}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{text-align:left;padding:.35rem .55rem;border-bottom:1px solid var(--line);
vertical-align:top}
th{background:#eef0f3;font-weight:600;font-size:.8rem;text-transform:uppercase;
letter-spacing:.03em;color:var(--mute);white-space:nowrap}
tbody tr:hover{background:#f3f6fb}
td.mono,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.82rem}
.nowrap{white-space:nowrap}
.mute{color:var(--mute)}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:.78rem;
font-weight:600;border:1px solid currentColor;white-space:nowrap}
.s-pending,.s-sending,.s-queued{color:#8a5a00;background:#fff6e0}
.s-completed,.s-delivered,.s-ok{color:#17663a;background:#e6f6ec}
.s-failed,.s-dead{color:#a61b1b;background:#fdeaea}
.s-expired,.s-cancelled,.s-unused,.s-user_rejected{color:#4a5260;background:#eef0f3}
form.filters{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-end;background:#fff;
border:1px solid var(--line);padding:.7rem;margin-bottom:.8rem}
form.filters>a{align-self:center}
form.filters label{display:flex;flex-direction:column;font-size:.78rem;color:var(--mute);
gap:.15rem}
input,select,button{font:inherit;padding:.3rem .5rem;border:1px solid #9aa3b1;
border-radius:.3rem;background:#fff}
button{cursor:pointer}
button.primary{background:var(--accent);color:#fff;border-color:var(--accent)}
button:focus-visible,a:focus-visible,input:focus-visible,select:focus-visible{
outline:3px solid #e37400;outline-offset:2px}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;background:#fff;
border:1px solid var(--line);padding:.7rem 1rem;margin:0}
dl.summary dt{color:var(--mute)}
dl.summary dd{margin:0}
.notice{border:1px solid #17663a;background:#e6f6ec;padding:.5rem .8rem;margin-bottom:.8rem}
.problem{border:1px solid #a61b1b;background:#fdeaea;padding:.5rem .8rem;margin-bottom:.8rem}
.scroll{overflow-x:auto}
.pager{margin:.8rem 0;display:flex;gap:1rem;align-items:center}
details pre{white-space:pre-wrap;word-break:break-all;margin:.3rem 0 0;font-size:.78rem}
.login{max-width:26rem;margin:3rem auto;background:#fff;border:1px solid var(--line);
padding:1.2rem 1.4rem}
.login label{display:block;margin:.7rem 0 .2rem;font-weight:600}
.login input{width:100%}
.login fieldset{border:1px solid var(--line);margin:1rem 0;padding:.4rem .9rem .9rem}
"""

_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # not no-referrer: under it a browser sends `Origin: null` with our own forms' POSTs, and the
    # origin check (auth.check_csrf) could not tell them from a sandboxed frame's
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _csp(nonce: str) -> str:
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'none'; img-src data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _html(title: str, body: str, status: int = 200, who: str = "", csrf: str = "") -> web.Response:
    nonce = secrets.token_urlsafe(16)
    logout = ""
    if who:
        logout = (
            f'<span class="who">signed in as {_e(who)}</span>'
            '<form method="post" action="/console/logout">'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
            '<button type="submit">Sign out</button></form>'
        )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · Verify Orchestrator console</title>"
        f'<style nonce="{nonce}">{_STYLE}</style></head><body>'
        '<header><h1><a href="/console">'
        f"Verify Orchestrator · operations console</a></h1>{logout}</header>"
        f"<main>{body}</main></body></html>"
    )
    headers = {**_HEADERS, "Content-Security-Policy": _csp(nonce)}
    return web.Response(text=page, status=status, content_type="text/html", headers=headers)


def _badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge s-{_e(status)}">{_e(text or status)}</span>'


def error_page(status: int, title: str, detail: str, who: str = "", csrf: str = "") -> web.Response:
    body = f'<h2>{_e(title)}</h2><div class="problem">{_e(detail)}</div>'
    body += '<p><a href="/console">Back to the console</a></p>'
    return _html(title, body, status, who, csrf)


def login_page(problem: str = "", status: int = 200, operator: bool = True) -> web.Response:
    note = f'<div class="problem" role="alert">{_e(problem)}</div>' if problem else ""
    operator_form = ""
    if operator:
        operator_form = (
            "<fieldset><legend>Operator</legend>"
            '<form method="post" action="/console/login">'
            '<label for="token">Console token</label>'
            '<input id="token" name="token" type="password" autocomplete="current-password">'
            '<p><button class="primary" type="submit">Sign in</button></p></form></fieldset>'
        )
    body = (
        f'<div class="login"><h2>Sign in</h2>{note}{operator_form}'
        "<fieldset><legend>Account</legend>"
        '<form method="post" action="/console/login">'
        '<label for="account_sid">Account SID (AC…) or API key (SK…)</label>'
        '<input id="account_sid" name="account_sid" autocomplete="username">'
        '<label for="auth_token">Auth token or key secret</label>'
        '<input id="auth_token" name="auth_token" type="password" '
        'autocomplete="current-password">'
        '<p><button class="primary" type="submit">Sign in</button></p></form></fieldset>'
        '<p class="mute">An account sees only its own applications and services.</p></div>'
    )
    return _html("Sign in", body, status)


def _when(v: object, ms: bool = False) -> str:
    if v is None:
        return ""
    text = str(v)
    if hasattr(v, "strftime"):
        text = v.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ms else v.strftime("%Y-%m-%d %H:%M:%S")
    return f'<span class="nowrap">{_e(text)}</span>'


def _steps_taken(v: Verification) -> str:
    taken = sum(1 for s in v.steps if s.initiated_at is not None)
    return f"{taken}/{len(v.steps)}"


def _channels(v: Verification) -> str:
    parts = []
    for i, s in enumerate(v.steps):
        name = _e(s.channel.value)
        parts.append(f"<strong>{name}</strong>" if i == v.current else name)
    return '<span class="nowrap">' + " → ".join(parts) + "</span>"


def _destinations(v: Verification) -> str:
    return "<br>".join(_e(d) for d in v.destinations())


def _providers(row: Row) -> str:
    named = [p for p in row.providers if p]
    if named:
        return _e(", ".join(dict.fromkeys(named)))
    return '<span class="mute">—</span>'


def _tenant_cell(tenant: str, name: str) -> str:
    """The name (the id in its tooltip; the id cut short when unnamed): one line per row."""
    if name:
        return f'<span title="{_e(tenant)}">{_e(name)}</span>'
    short = tenant if len(tenant) <= 14 else tenant[:12] + "…"
    return f'<span class="mono mute" title="{_e(tenant)}">{_e(short)}</span>'


def _filter_form(filters: Filters, tenants: dict[str, str]) -> str:
    status_opts = ['<option value="">any</option>']
    for s in Status:
        sel = " selected" if filters.status is s else ""
        status_opts.append(f'<option value="{s.value}"{sel}>{s.value}</option>')
    tenant_opts = ['<option value="">all</option>']
    for tid, name in sorted(tenants.items(), key=lambda kv: (kv[1].lower(), kv[0])):
        sel = " selected" if filters.tenant == tid else ""
        label = f"{name} ({tid[:12]}…)" if name else tid
        tenant_opts.append(f'<option value="{_e(tid)}"{sel}>{_e(label)}</option>')
    return (
        '<form class="filters" method="get" action="/console" role="search">'
        f'<label>Status<select name="status" id="f-status">{"".join(status_opts)}</select></label>'
        '<label>Destination<input name="destination" id="f-destination" '
        f'value="{_e(filters.destination or "")}" placeholder="number or e-mail"></label>'
        '<label>Application / service<select name="tenant" id="f-tenant">'
        f"{''.join(tenant_opts)}</select></label>"
        '<button class="primary" type="submit">Filter</button>'
        '<a href="/console">clear</a></form>'
    )


def _query(filters: Filters, before: int | None) -> str:
    params = {
        "status": filters.status.value if filters.status else "",
        "destination": filters.destination or "",
        "tenant": filters.tenant or "",
        "before": str(before) if before is not None else "",
    }
    return urlencode({k: v for k, v in params.items() if v})


def list_page(
    page: Page,
    filters: Filters,
    names: dict[str, str],
    tenants: dict[str, str],
    who: str,
    csrf: str,
) -> web.Response:
    rows = []
    for row in page.rows:
        v = row.v
        name = names.get(v.tenant, "")
        rows.append(
            "<tr>"
            f'<td class="nowrap">{_when(v.created_at)}</td>'
            f'<td class="mono nowrap"><a href="/console/v/{_e(v.request_id)}">'
            f"{_e(v.request_id)}</a></td>"
            f'<td class="nowrap">{_tenant_cell(v.tenant, name)}</td>'
            f"<td>{_e(v.dialect)}</td>"
            f"<td>{_channels(v)}</td>"
            f"<td>{_destinations(v)}</td>"
            f"<td>{_badge(v.status.value)}</td>"
            f"<td>{_steps_taken(v)}</td>"
            f"<td>{_providers(row)}</td>"
            "</tr>"
        )
    table = (
        '<div class="scroll"><table id="verifications"><thead><tr><th>Created (UTC)</th><th>Request</th>'
        "<th>Application / service</th><th>Dialect</th><th>Channels</th><th>Destination</th>"
        "<th>Status</th><th>Steps taken</th><th>Provider</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    if not rows:
        table = '<p class="mute" id="empty">No verification matches.</p>'
    pager = f'<span class="mute">{len(page.rows)} shown · {page.examined} examined</span>'
    if filters.before_ms is not None:
        pager += f'<a href="/console?{_e(_query(filters, None))}">newest</a>'
    if page.next_before is not None:
        pager += (
            f'<a rel="next" href="/console?{_e(_query(filters, page.next_before))}">older →</a>'
        )
    body = (
        "<h2>Recent verifications</h2>"
        + _filter_form(filters, tenants)
        + table
        + f'<div class="pager">{pager}</div>'
    )
    return _html("Recent verifications", body, who=who, csrf=csrf)


def _events(v: Verification) -> str:
    rows = [
        f"<tr><td>{_when(v.created_at, True)}</td><td>started</td><td></td><td></td><td></td></tr>"
    ]
    for i, s in enumerate(v.steps):
        rows.append(
            f"<tr><td>{_when(s.initiated_at, True)}</td>"
            f"<td>step {i + 1}: {_e(s.channel.value)}</td>"
            f"<td>{_e(s.to)}</td><td>{_badge(s.status.value)}</td>"
            f"<td>{_when(s.finalized_at, True)} {_e(s.reason or '')}</td></tr>"
        )
    if v.finished_at is not None:
        rows.append(
            f"<tr><td>{_when(v.finished_at, True)}</td><td>ended</td><td></td>"
            f"<td>{_badge(v.status.value)}</td><td></td></tr>"
        )
    return (
        '<table id="events"><thead><tr><th>When (UTC)</th><th>Event</th><th>Destination</th>'
        "<th>Status</th><th>Finalized / reason</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _claims(m: Message) -> str:
    if not m.claims:
        if m.provider:
            return f"{_e(m.provider)} {_badge('ok', 'sent')}"
        return '<span class="mute">no claim yet</span>'
    parts = []
    for provider, state in m.claims.items():
        word, _, vendor_id = state.partition(":")
        seen = m.receipts.get(provider)
        extra = f" · receipts: {', '.join(seen)}" if seen else ""
        vid = f' <span class="mono mute">{_e(vendor_id)}</span>' if vendor_id else ""
        parts.append(f"{_e(provider)} {_badge(word)}{vid}{_e(extra)}")
    return "<br>".join(parts)


def _outbox(m: Message) -> str:
    if m.outbox is None:
        return '<span class="mute">—</span>'
    shown = {k: m.outbox.get(k) for k in ("from", "text", "subject", "code", "created_at")}
    text = _e(shown.get("text") or "")
    code = _e(shown.get("code") or "")
    return (
        f'<span class="mono">{text}</span><br><span class="mute">code</span> '
        f'<span class="mono" data-code>{code}</span> · <span class="mute">from</span> '
        f"{_e(shown.get('from') or '')} · {_e(shown.get('created_at') or '')}"
    )


def _messages(messages: Iterable[Message]) -> str:
    rows = [
        f"<tr><td>{m.step + 1}</td><td>{_e(m.channel)}</td><td>{_e(m.to)}</td>"
        f"<td>{_claims(m)}</td><td>{_when(m.sent_at)}</td><td>{_outbox(m)}</td></tr>"
        for m in messages
    ]
    if not rows:
        return '<p class="mute">No message sent yet.</p>'
    return (
        '<table id="messages"><thead><tr><th>Step</th><th>Channel</th><th>To</th>'
        "<th>Provider (claim)</th><th>Sent (UTC)</th><th>Sandbox outbox copy</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _webhook_state(w: WebhookMessage) -> str:
    if w.delivered:
        return _badge("delivered", f"delivered {w.delivered}")
    if w.failed:
        return _badge("dead", "dead-lettered")
    if w.next_attempt:
        return _badge("queued", f"next attempt {w.next_attempt}")
    if w.fanned_out is not None:
        return _badge("ok", f"fanned out to {w.fanned_out} endpoint(s)")
    return _badge("pending", "in flight")


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def _webhooks(hooks: list[WebhookMessage], rid: str, csrf: str) -> str:
    if not hooks:
        return '<p class="mute">No webhook message (none requested, or none yet).</p>'
    rows = []
    for w in hooks:
        replay = ""
        if w.failed:
            replay = (
                f'<form method="post" action="/console/webhooks/{_e(w.id)}/replay">'
                f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
                f'<input type="hidden" name="rid" value="{_e(rid)}">'
                '<button class="primary" type="submit">Replay</button></form>'
            )
        tries = "<br>".join(_e(t) for t in w.tries)
        last = _e(w.last_status) if w.last_status is not None else ""
        if not last and w.attempts:
            last = '<span class="mute">no response (connection failed or timed out)</span>'
        target = f"<br><span class='mute'>endpoint {_e(w.endpoint)}</span>" if w.endpoint else ""
        rows.append(
            f'<tr data-message="{_e(w.id)}"><td class="mono">{_e(w.id)}{target}</td>'
            f"<td>{_e(w.kind)}</td><td>{_e(w.created or '')}</td><td>{_webhook_state(w)}</td>"
            f"<td>{_e(w.attempts if w.attempts is not None else '')}</td>"
            f"<td>{last}{'<br>' if last and tries else ''}"
            f'<span class="mute">{tries}</span></td>'
            f"<td>{w.replays}</td>"
            f"<td><details><summary>body</summary><pre>{_e(_pretty(w.body))}</pre></details>"
            f"</td><td>{replay}</td></tr>"
        )
    return (
        '<table id="webhooks"><thead><tr><th>Message</th><th>Kind</th><th>Created (UTC)</th>'
        "<th>State</th><th>Attempts</th><th>Last response</th><th>Replays</th><th>Body</th>"
        f"<th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def detail_page(
    d: Detail, who: str, csrf: str, notice: str = "", problem: str = ""
) -> web.Response:
    v = d.v
    note = f'<div class="notice" role="status">{_e(notice)}</div>' if notice else ""
    note += f'<div class="problem" role="alert">{_e(problem)}</div>' if problem else ""
    summary = (
        '<dl class="summary">'
        f'<dt>Request</dt><dd class="mono">{_e(v.request_id)}</dd>'
        f"<dt>Application / service</dt><dd>{_e(d.tenant_name)} "
        f'<span class="mono mute">{_e(v.tenant)}</span></dd>'
        f"<dt>Dialect</dt><dd>{_e(v.dialect)}</dd>"
        f"<dt>Status</dt><dd>{_badge(v.status.value)}</dd>"
        f"<dt>Brand</dt><dd>{_e(v.brand)}</dd>"
        f"<dt>Channels</dt><dd>{_channels(v)}</dd>"
        f"<dt>Steps taken</dt><dd>{_steps_taken(v)}</dd>"
        f"<dt>Wrong codes</dt><dd>{v.wrong_attempts} of {v.rules.max_checks}</dd>"
        f"<dt>Client ref</dt><dd>{_e(v.client_ref or '')}</dd>"
        "</dl>"
    )
    body = (
        f'<p><a href="/console">← recent verifications</a></p>{note}'
        f"<h2>Verification</h2>{summary}"
        f"<h2>Events</h2>{_events(v)}"
        f"<h2>Messages sent</h2>{_messages(d.messages)}"
        f"<h2>Webhook attempts</h2>{_webhooks(d.webhooks, v.request_id, csrf)}"
    )
    return _html(f"Verification {v.request_id}", body, who=who, csrf=csrf)
