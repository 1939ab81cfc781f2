"""`verify-orchestrator dev`: embedded Redis, web and worker in one process, sandbox on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from orchestrator.cli.devredis import EmbeddedRedis
from orchestrator.delivery.providers_file import ProvidersFileError, delivery_for
from orchestrator.operators.operators_file import OperatorsFileError, operators_config_for
from orchestrator.settings import Settings
from orchestrator.tenants import accounts, apps
from orchestrator.timefmt import iso_ms, utcnow
from orchestrator.workflows import registry as workflows
from orchestrator.workflows.file import WorkflowsFileError

__all__ = ["run_dev"]

log = logging.getLogger("orchestrator.dev")


def run_dev(port: int, data_dir: Path) -> int:
    base = Settings()
    try:
        # before Redis starts: a broken providers or operators file is one line, no traceback
        delivery_for(base.model_copy(update={"sandbox": True}))
        operators_config_for(base.model_copy(update={"sandbox": True}))
        workflows.load_for(base)
    except (ProvidersFileError, OperatorsFileError, WorkflowsFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    embedded: EmbeddedRedis | None = None
    redis_url = base.redis_url
    if "redis_url" not in base.model_fields_set:
        embedded = EmbeddedRedis(data_dir)
        embedded.start()
        redis_url = embedded.url
        (data_dir / "redis.url").write_text(redis_url)
    public_url = f"http://127.0.0.1:{port}"
    settings = base.model_copy(
        update={
            "redis_url": redis_url,
            # the embedded Redis is one process: no Sentinel to ask, whatever the environment says
            **({"redis_sentinels": ""} if embedded is not None else {}),
            "sandbox": True,
            "webhook_allow_private": True,
            # an author edits the workflows file and tries it at once: re-read it on change
            **(
                {"workflows_poll_seconds": 1.0}
                if "workflows_poll_seconds" not in base.model_fields_set
                else {}
            ),
            # one person trying things by hand retries the same number often; keep the guard on
            # but far from their way (explicit VERIFY_FRAUD_* settings still win)
            **{
                name: value
                for name, value in (("fraud_number_limit", 100), ("fraud_ip_limit", 1000))
                if name not in base.model_fields_set
            },
            "public_url": public_url
            if "public_url" not in base.model_fields_set
            else base.public_url,
        }
    )
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("arq").setLevel(logging.WARNING)
    try:
        asyncio.run(_serve(settings, port, data_dir))
    finally:
        if embedded is not None:
            embedded.stop()
            with contextlib.suppress(FileNotFoundError):
                (data_dir / "redis.url").unlink()
    return 0


async def _demo_app(settings: Settings, data_dir: Path) -> dict[str, Any]:
    """Create the demo application once; later runs reuse it while Redis still has it."""
    record = data_dir / "demo-app.json"
    redis = Redis.from_url(settings.redis_url)
    try:
        if record.exists():
            saved: dict[str, Any] = json.loads(record.read_text())
            if await apps.get_app(redis, saved["application_id"]) is not None:
                return saved
        status_url = f"{settings.public_url}/dev/webhooks"
        account = await accounts.create_account(redis, "demo", iso_ms(utcnow()))
        created = await apps.create_app(redis, "demo", status_url, iso_ms(utcnow()), account.sid)
    finally:
        await redis.aclose()
    key_path = (data_dir / "demo-app.key").resolve()
    key_path.write_text(created.private_key_pem)
    key_path.chmod(0o600)
    saved = {
        "account_sid": account.sid,
        "auth_token": account.auth_token,
        "application_id": created.app.id,
        "api_key": created.app.api_key,
        "api_secret": created.api_secret,
        "signature_secret": created.app.signature_secret,
        "webhook_secret": created.app.webhook_secret,
        "private_key_path": str(key_path),
        "status_url": status_url,
    }
    record.write_text(json.dumps(saved, indent=2))
    record.chmod(0o600)
    return saved


async def _received_webhook(request: web.Request) -> web.Response:
    body = await request.text()
    print(f"webhook received: {body}", flush=True)
    return web.Response(status=204)


def _banner(app: dict[str, Any], settings: Settings) -> str:
    """What `dev` prints: credentials and snippets that run as printed once the placeholders a
    user reads off earlier output (REQUEST_ID, the code, VA...) are filled in; every snippet is
    run by tests/integration/test_printed_snippets.py. The SDK snippet's `request` stand-in
    takes `method` and `url` by name: vonage-http-client calls `request(**params)`."""
    url = settings.public_url
    basic = f"{app['api_key']}:{app['api_secret']}"
    host = url.removeprefix("http://")
    return f"""
Verify Orchestrator dev server on {url} (sandbox on, Redis embedded)
  application_id  {app["application_id"]}
  private key     {app["private_key_path"]}
  api key/secret  {basic}
  webhooks        printed here (status URL {app["status_url"]})
  Twilio dialect  account {app.get("account_sid")}  auth token {app.get("auth_token")}

Start a verification:
  curl -s -u {basic} -H 'Content-Type: application/json' {url}/v2/verify \\
    -d '{{"brand":"ACME","workflow":[{{"channel":"sms","to":"447700900000"}}]}}'
Read the code the sandbox "sent":
  curl -s -u {basic} '{url}/sandbox/v1/messages?to=447700900000'
Check it:
  curl -s -u {basic} -H 'Content-Type: application/json' {url}/v2/verify/REQUEST_ID -d '{{"code":"1234"}}'

Twilio dialect (create a service once, then verifications):
  curl -s -u {app.get("account_sid")}:{app.get("auth_token")} {url}/v2/Services -d FriendlyName=ACME
  curl -s -u {app.get("account_sid")}:{app.get("auth_token")} {url}/v2/Services/VA.../Verifications \\
    --data-urlencode To=+447700900000 -d Channel=sms

Passkeys demo (a real authenticator in your browser; localhost is a secure context):
  http://localhost:{url.rsplit(":", 1)[-1]}/passkeys/demo?service=VA...&identity=demo-user-0001

Python (official vonage SDK; it speaks https only, so send it through plain http here):
  from vonage import Auth, HttpClientOptions, Vonage
  from vonage_verify import VerifyRequest, SmsChannel
  client = Vonage(Auth(application_id="{app["application_id"]}", private_key="{app["private_key_path"]}"),
                  HttpClientOptions(api_host="{host}"))
  session = client.http_client._session
  send = session.request
  session.request = lambda method, url, **kw: send(method, url.replace("https://", "http://", 1), **kw)
  print(client.verify.start_verification(VerifyRequest(brand="ACME", workflow=[SmsChannel(to="447700900000")])))
"""


async def _serve(settings: Settings, port: int, data_dir: Path) -> None:
    from orchestrator.http.app import create_app
    from workers.settings import create_worker

    demo = await _demo_app(settings, data_dir)
    app = create_app(settings)
    app.router.add_post("/dev/webhooks", _received_webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    # this process owns its signals (to stop web and worker together), not arq
    worker = create_worker(settings, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    print(_banner(demo, settings), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker_task
        await worker.close()
        await runner.cleanup()
