"""`/passkeys/demo`: a hosted page to try Passkeys factors in a browser (sandbox only).

The page drives `navigator.credentials.create/get` against same-origin demo routes
(`/passkeys/demo/api/*`) that run the very functions behind the Passkeys API, for the service
named in the body. The browser never holds account credentials: in the sandbox a service SID is
enough to register and approve passkeys on it, which is why these routes exist only there.

Open it on a host name, not an IP address (WebAuthn refuses IPs as relying-party IDs), e.g.
`http://localhost:8080/passkeys/demo?service=VA…&identity=alice-0001` under
`verify-orchestrator dev`; http://localhost is a secure context, so no certificate is needed.
With no relying party configured on the service, the RP ID is the page's host and the expected
origin the page's origin.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from orchestrator import constants
from orchestrator.dialects.twilio.context import base_url
from orchestrator.dialects.twilio.passkeys import (
    Operation,
    approve_challenge,
    create_challenge,
    create_factor,
    verify_factor,
)
from orchestrator.dialects.twilio.wire import TwilioError, error_body, error_for
from orchestrator.domain import errors
from orchestrator.http.body import read_json
from orchestrator.http.keys import SERVICES
from orchestrator.tenants.verify_services import Service

__all__ = ["setup_routes"]

_SERVICE_SID = re.compile(r"VA[0-9a-fA-F]{32}")
_OPERATIONS: dict[str, Operation] = {
    "factors": create_factor,
    "verify-factor": verify_factor,
    "challenges": create_challenge,
    "approve-challenge": approve_challenge,
}
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _error(exc: TwilioError) -> web.Response:
    return web.json_response(error_body(exc.code, exc.message, exc.status), status=exc.status)


async def _service(request: web.Request, sid: Any) -> Service:
    if not isinstance(sid, str) or not _SERVICE_SID.fullmatch(sid):
        raise TwilioError(400, 60200, "Invalid parameter: service")
    raw = await request.app[SERVICES].redis.get(constants.SERVICE_PREFIX + sid)
    if raw is None:
        raise TwilioError(404, 20404, f"The requested resource {sid} was not found")
    return Service.model_validate_json(raw)


async def api(request: web.Request) -> web.Response:
    """POST /passkeys/demo/api/{operation} {service: VA…, body: <the Passkeys API body>}."""
    operation = _OPERATIONS.get(request.match_info["operation"])
    if operation is None:
        raise web.HTTPNotFound()
    # same-origin only: JSON (a cross-site form cannot send it without a CORS preflight, which
    # nothing here answers) and, when the browser says where it is, this very origin
    origin = request.headers.get("Origin")
    if request.content_type != "application/json" or (
        origin is not None and origin != base_url(request)
    ):
        raise web.HTTPForbidden()
    try:
        payload = await read_json(request)
        if not isinstance(payload, dict):
            raise TwilioError(400, 60200, "Invalid parameter: body")
        service = await _service(request, payload.get("service"))
        services = request.app[SERVICES]
        resource = await operation(services, service, payload.get("body"), base_url(request))
    except TwilioError as exc:
        return _error(exc)
    except errors.DomainError as exc:
        return _error(error_for(exc, request.path))
    status = 201 if request.match_info["operation"] in {"factors", "challenges"} else 200
    return web.json_response(resource, status=status)


async def page(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html", headers=_PAGE_HEADERS)


async def script(request: web.Request) -> web.Response:
    return web.Response(text=_SCRIPT, content_type="text/javascript", headers=_PAGE_HEADERS)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/passkeys/demo", page)
    app.router.add_get("/passkeys/demo/demo.js", script)
    app.router.add_post("/passkeys/demo/api/{operation}", api)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Passkeys demo · Verify Orchestrator</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1d2330; }
  h1 { font-size: 1.4rem; }
  label { display: block; margin: .6rem 0 .2rem; font-weight: 600; }
  input { width: 100%; box-sizing: border-box; padding: .45rem; font: inherit; border: 1px solid #b8c0cc; border-radius: 6px; }
  button { margin: 1rem .5rem 0 0; padding: .55rem 1rem; font: inherit; border: 0; border-radius: 6px; background: #2453d4; color: #fff; cursor: pointer; }
  button.secondary { background: #5a6476; }
  button:disabled { opacity: .5; cursor: default; }
  table { margin-top: 1.2rem; border-collapse: collapse; }
  td { padding: .2rem .8rem .2rem 0; }
  td:first-child { color: #5a6476; }
  code, pre { font: 13px/1.4 ui-monospace, monospace; }
  pre { background: #f3f5f8; padding: .8rem; overflow: auto; max-height: 24rem; border-radius: 6px; }
  .note { background: #fff6db; padding: .6rem .8rem; border-radius: 6px; }
  .error { color: #b3261e; font-weight: 600; }
  .ok { color: #17753a; font-weight: 600; }
</style>
</head>
<body>
<h1>Passkeys demo</h1>
<p>Register a passkey for an identity on a Verify service, then sign in with it. The page calls
<code>navigator.credentials</code>; this server runs the same code as
<code>POST /v2/Services/{VA}/Passkeys/…</code>. Sandbox only.</p>
<p id="host-note" class="note" hidden></p>
<p id="service-note" class="note" hidden>No service given. Create one with a relying party for this
page, then open <code>/passkeys/demo?service=VA…&amp;identity=…</code>:<br>
<code id="service-curl"></code></p>
<label for="service">Service SID</label>
<input id="service" placeholder="VA…" autocomplete="off" spellcheck="false">
<label for="identity">Identity (opaque, no PII)</label>
<input id="identity" autocomplete="off" spellcheck="false">
<label for="friendly-name">Passkey name</label>
<input id="friendly-name" value="Demo passkey" autocomplete="off">
<div>
  <button id="register" type="button">Register a passkey</button>
  <button id="authenticate" type="button">Sign in as this identity</button>
  <button id="authenticate-discoverable" class="secondary" type="button">Sign in without an identity</button>
</div>
<table>
  <tr><td>Factor</td><td><code id="factor-sid">&ndash;</code> <span id="factor-status"></span></td></tr>
  <tr><td>Challenge</td><td><code id="challenge-sid">&ndash;</code> <span id="challenge-status"></span></td></tr>
  <tr><td>Result</td><td id="message">&ndash;</td></tr>
</table>
<pre id="log"></pre>
<script src="/passkeys/demo/demo.js"></script>
</body>
</html>
"""

_SCRIPT = r"""'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  $('service').value = params.get('service') || '';
  const hex = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, '0')).join('');
  $('identity').value = params.get('identity') || ('demo-' + hex);

  // WebAuthn wants a domain: an IP address is never a valid relying-party ID
  const onIp = /^[0-9.]+$|^\[/.test(location.hostname);
  const here = new URL(location.href);
  if (onIp) {
    here.hostname = 'localhost';
    $('host-note').hidden = false;
    $('host-note').textContent = 'Passkeys need a host name, not an IP address: open ';
    const a = document.createElement('a');
    a.href = a.textContent = here.href;
    $('host-note').append(a, '.');
  }
  if (!params.get('service')) {
    $('service-note').hidden = false;
    // the account SID and auth token are the ones `verify-orchestrator dev` prints
    $('service-curl').textContent =
      'curl -u $ACCOUNT_SID:$AUTH_TOKEN ' + location.origin + '/v2/Services -d FriendlyName=Demo ' +
      '-d Passkeys.RelyingParty.Id=' + here.hostname + ' -d Passkeys.RelyingParty.Name=Demo ' +
      '-d Passkeys.RelyingParty.Origins=' + here.origin;
  }

  const toBuf = (s) => {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  };
  const fromBuf = (buf) => {
    const bytes = new Uint8Array(buf);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };
  const log = (title, value) => {
    $('log').textContent = title + '\n' + JSON.stringify(value, null, 2) + '\n\n' + $('log').textContent;
  };
  const say = (text, ok) => {
    $('message').textContent = text;
    $('message').className = ok ? 'ok' : 'error';
  };

  async function call(operation, body) {
    const res = await fetch('/passkeys/demo/api/' + operation, {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({service: $('service').value.trim(), body}),
    });
    const data = await res.json();
    log(operation + ' → ' + res.status, data);
    if (!res.ok) throw new Error((data && data.message) || ('HTTP ' + res.status));
    return data;
  }

  function creationOptions(pk) {
    return Object.assign({}, pk, {
      challenge: toBuf(pk.challenge),
      user: Object.assign({}, pk.user, {id: toBuf(pk.user.id)}),
      excludeCredentials: (pk.excludeCredentials || []).map((c) => Object.assign({}, c, {id: toBuf(c.id)})),
    });
  }
  function requestOptions(pk) {
    return Object.assign({}, pk, {
      challenge: toBuf(pk.challenge),
      allowCredentials: (pk.allowCredentials || []).map((c) => Object.assign({}, c, {id: toBuf(c.id)})),
    });
  }
  const attestation = (cred) => ({
    id: cred.id,
    rawId: fromBuf(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || null,
    response: {
      attestationObject: fromBuf(cred.response.attestationObject),
      clientDataJSON: fromBuf(cred.response.clientDataJSON),
      transports: cred.response.getTransports ? cred.response.getTransports() : [],
    },
  });
  const assertion = (cred) => ({
    id: cred.id,
    rawId: fromBuf(cred.rawId),
    type: cred.type,
    authenticatorAttachment: cred.authenticatorAttachment || null,
    response: {
      clientDataJSON: fromBuf(cred.response.clientDataJSON),
      authenticatorData: fromBuf(cred.response.authenticatorData),
      signature: fromBuf(cred.response.signature),
      userHandle: cred.response.userHandle ? fromBuf(cred.response.userHandle) : null,
    },
  });

  const buttons = ['register', 'authenticate', 'authenticate-discoverable'].map($);
  async function busy(work) {
    buttons.forEach((b) => { b.disabled = true; });
    try { await work(); } catch (err) { say(String(err.message || err), false); }
    finally { buttons.forEach((b) => { b.disabled = false; }); }
  }

  async function register() {
    say('Creating the factor…', true);
    const factor = await call('factors', {friendly_name: $('friendly-name').value.trim(), identity: $('identity').value.trim()});
    $('factor-sid').textContent = factor.sid;
    $('factor-status').textContent = factor.status;
    say('Waiting for the authenticator…', true);
    const cred = await navigator.credentials.create({publicKey: creationOptions(factor.options.publicKey)});
    const verified = await call('verify-factor', attestation(cred));
    $('factor-status').textContent = verified.status;
    say('Passkey registered: factor ' + verified.status, true);
  }

  async function authenticate(withIdentity) {
    say('Creating the challenge…', true);
    const body = withIdentity ? {identity: $('identity').value.trim()} : {};
    const challenge = await call('challenges', body);
    $('challenge-sid').textContent = challenge.sid;
    $('challenge-status').textContent = challenge.status;
    say('Waiting for the authenticator…', true);
    const cred = await navigator.credentials.get({publicKey: requestOptions(challenge.options.publicKey)});
    const approved = await call('approve-challenge', assertion(cred));
    $('challenge-status').textContent = approved.status;
    say('Signed in as ' + approved.identity + ': challenge ' + approved.status, true);
  }

  if (!window.PublicKeyCredential || !window.isSecureContext) {
    say('This browser or page cannot use passkeys (a secure context is needed: https, or http://localhost).', false);
  }
  $('register').addEventListener('click', () => busy(register));
  $('authenticate').addEventListener('click', () => busy(() => authenticate(true)));
  $('authenticate-discoverable').addEventListener('click', () => busy(() => authenticate(false)));
})();
"""
