"""`verify-orchestrator`: serve, worker, dev, apps, sandbox and webhooks commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.cli import templates as templates_cli
from orchestrator.cli import workflows as workflows_cli
from orchestrator.delivery.providers_file import ProvidersFileError
from orchestrator.engine import outbox
from orchestrator.operators.operators_file import OperatorsFileError
from orchestrator.redisconn import redis_client
from orchestrator.security import fraud
from orchestrator.security.netguard import UnsafeURL, check_status_url
from orchestrator.settings import Settings
from orchestrator.tenants import accounts, apps, verify_services
from orchestrator.timefmt import iso_ms, utcnow
from orchestrator.workflows.file import WorkflowsFileError

__all__ = ["main"]

DEV_DIR = Path(".verify-dev")


def _settings(**overrides: Any) -> Settings:
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        # a bad VERIFY_* value: say which, without a traceback
        problems = "; ".join(
            f"VERIFY_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"error: invalid settings: {problems}") from None
    # the CLI talks to the `dev` instance when no Redis was configured and one is running here
    url_file = DEV_DIR / "redis.url"
    if "redis_url" not in settings.model_fields_set and url_file.exists():
        settings = settings.model_copy(update={"redis_url": url_file.read_text().strip()})
    return settings


def _logging(settings: Settings) -> None:
    from orchestrator.logjson import configure

    # one JSON object per line, credentials scrubbed (orchestrator/logjson.py)
    configure(settings.log_level)


def cmd_serve(args: argparse.Namespace) -> int:
    from orchestrator.http.app import create_app
    from orchestrator.http.graceful import serve

    settings = _settings()
    _logging(settings)
    try:
        app = create_app(settings)
    except (ProvidersFileError, OperatorsFileError, WorkflowsFileError) as exc:
        return _fail(str(exc), 2)
    ssl_context = None
    if args.certfile:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.certfile, args.keyfile)
    # not web.run_app: SIGTERM must also let requests whose body is still uploading finish
    serve(
        app,
        host=args.host,
        port=args.port,
        ssl_context=ssl_context,
        shutdown_timeout=10,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from workers.settings import create_worker

    settings = _settings()
    _logging(settings)
    try:
        worker = create_worker(settings)
    except (ProvidersFileError, OperatorsFileError, WorkflowsFileError) as exc:
        return _fail(str(exc), 2)
    worker.run()
    return 0


def _fail(message: str, exit_code: int) -> int:
    """Say what went wrong on stderr; the exit code to return."""
    print(f"error: {message}", file=sys.stderr)
    return exit_code


def _run(coro_fn: Callable[[Redis], Awaitable[int]], settings: Settings) -> int:
    async def go() -> int:
        redis = redis_client(settings)
        try:
            return await coro_fn(redis)
        finally:
            await redis.aclose()

    return asyncio.run(go())


async def _check_url(url: str, settings: Settings) -> str | None:
    if not url:
        return None
    try:
        await check_status_url(url, settings.webhook_allow_private)
    except UnsafeURL as exc:
        return str(exc)
    return None


def cmd_apps_create(args: argparse.Namespace) -> int:
    settings = _settings()

    async def go(redis: Redis) -> int:
        problem = await _check_url(args.status_url or "", settings)
        if problem:
            return _fail(problem, 2)
        now = iso_ms(utcnow())
        account_sid = args.account_sid
        if account_sid:
            if await accounts.get_account(redis, account_sid) is None:
                return _fail(f"no account {account_sid}", 1)
        else:
            account_sid = (await accounts.create_account(redis, args.name, now)).sid
        created = await apps.create_app(redis, args.name, args.status_url or "", now, account_sid)
        key_path = Path(args.private_key_out or f"{created.app.id}.key").resolve()  # noqa: ASYNC240
        _write_private(key_path, created.private_key_pem)
        print(json.dumps(_app_json(created, key_path), indent=2))
        return 0

    return _run(go, settings)


def _write_private(path: Path, pem: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(pem)
    path.chmod(0o600)


def _app_json(created: apps.NewApplication, key_path: Path) -> dict[str, Any]:
    app = created.app
    return {
        "application_id": app.id,
        "account_sid": app.account_sid,
        "name": app.name,
        "api_key": app.api_key,
        "api_secret": created.api_secret,
        "signature_secret": app.signature_secret,
        "webhook_secret": app.webhook_secret,
        "status_url": app.status_url or None,
        "private_key_path": str(key_path),
    }


def cmd_apps_list(args: argparse.Namespace) -> int:
    async def go(redis: Redis) -> int:
        print(json.dumps([a.public() for a in await apps.list_apps(redis)], indent=2))
        return 0

    return _run(go, _settings())


def cmd_apps_update(args: argparse.Namespace) -> int:
    settings = _settings()
    geo = _geo_arg(args.geo_allow)
    if isinstance(geo, str):
        return _fail(geo, 2)

    async def go(redis: Redis) -> int:
        if args.status_url:
            problem = await _check_url(args.status_url, settings)
            if problem:
                return _fail(problem, 2)
        updated = await apps.update_app(
            redis,
            args.application_id,
            name=args.name,
            status_url=args.status_url,
            enable_status_url=args.enable,
            sim_swap_max_age_hours=args.sim_swap_max_age,
        )
        if updated is None:
            return _fail(f"no application {args.application_id}", 1)
        policy = await fraud.set_policy(
            redis, updated.id, geo_allow=geo, bypass_allowed=args.allow_fraud_bypass
        )
        print(json.dumps({**updated.public(), **policy.as_json()}, indent=2))
        return 0

    return _run(go, settings)


def _geo_arg(value: str | None) -> tuple[str, ...] | str | None:
    """--geo-allow as calling codes (None: not given), or the error to print."""
    if value is None:
        return None
    try:
        return fraud.parse_geo(value)
    except ValueError as exc:
        return str(exc)


def cmd_services_update(args: argparse.Namespace) -> int:
    """A Twilio-dialect service's fraud switches: not part of Twilio's API, so CLI only."""
    settings = _settings()
    geo = _geo_arg(args.geo_allow)
    if isinstance(geo, str):
        return _fail(geo, 2)

    async def go(redis: Redis) -> int:
        raw = await redis.get(constants.SERVICE_PREFIX + args.service_sid)
        if raw is None:
            return _fail(f"no service {args.service_sid}", 1)
        service = verify_services.Service.model_validate_json(raw)
        if args.sim_swap_max_age is not None:
            service.sim_swap_max_age_hours = args.sim_swap_max_age or None
            await verify_services.save_service(redis, service)
        if args.workflow is not None:
            problem = workflows_cli.check_service_workflow(settings, args.workflow)
            if problem is not None:
                return _fail(problem, 2)
            service.workflow = args.workflow or None
            await verify_services.save_service(redis, service)
        policy = await fraud.set_policy(
            redis, args.service_sid, geo_allow=geo, bypass_allowed=args.allow_fraud_bypass
        )
        out: dict[str, object] = {"service_sid": args.service_sid, **policy.as_json()}
        if service.sim_swap_max_age_hours is not None:
            out["sim_swap_max_age_hours"] = service.sim_swap_max_age_hours
        if service.workflow is not None:
            out["workflow"] = service.workflow
        print(json.dumps(out, indent=2))
        return 0

    return _run(go, settings)


def cmd_accounts_create(args: argparse.Namespace) -> int:
    async def go(redis: Redis) -> int:
        account = await accounts.create_account(redis, args.name, iso_ms(utcnow()))
        body = {
            "account_sid": account.sid,
            "auth_token": account.auth_token,
            "friendly_name": account.friendly_name,
            "webhook_secret": account.webhook_secret,
        }
        print(json.dumps(body, indent=2))
        return 0

    return _run(go, _settings())


def cmd_api_key_create(args: argparse.Namespace) -> int:
    async def go(redis: Redis) -> int:
        if await accounts.get_account(redis, args.account_sid) is None:
            return _fail(f"no account {args.account_sid}", 1)
        key, secret = await accounts.create_api_key(
            redis, args.account_sid, args.name, iso_ms(utcnow())
        )
        print(
            json.dumps({"sid": key.sid, "secret": secret, "account_sid": key.account_sid}, indent=2)
        )
        return 0

    return _run(go, _settings())


def cmd_sandbox_messages(args: argparse.Namespace) -> int:
    async def go(redis: Redis) -> int:
        found = await outbox.list_messages(redis, args.account_sid, args.to)
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return 0

    return _run(go, _settings())


def cmd_webhooks_failed(args: argparse.Namespace) -> int:
    from orchestrator.engine.webhook_admin import list_failed

    async def go(redis: Redis) -> int:
        print(json.dumps(await list_failed(redis, args.limit), indent=2))
        return 0

    return _run(go, _settings())


def cmd_webhooks_replay(args: argparse.Namespace) -> int:
    from orchestrator.engine.webhook_admin import replay, replay_all

    async def go(redis: Redis) -> int:
        now_ms = int(utcnow().timestamp() * 1000)
        if args.all:
            done = await replay_all(redis, now_ms)
        else:
            done = [await replay(redis, args.message_id, now_ms)]
        print(json.dumps([r.as_json() for r in done], indent=2))
        # a named message that could not be replayed is an error; --all reports and succeeds
        return 1 if not args.all and done[0].job_id is None else 0

    return _run(go, _settings())


def cmd_dev(args: argparse.Namespace) -> int:
    from orchestrator.cli.devserver import run_dev

    return run_dev(port=args.port, data_dir=Path(args.data_dir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verify-orchestrator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP ingress")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--keyfile", help="the certificate's private key (PEM)")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("worker", help="run the arq worker")
    p.set_defaults(fn=cmd_worker)

    p = sub.add_parser("dev", help="embedded Redis + web + worker + sandbox, for trying it out")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--data-dir", default=str(DEV_DIR))
    p.set_defaults(fn=cmd_dev)

    apps_p = sub.add_parser("apps", help="manage applications").add_subparsers(
        dest="apps_command", required=True
    )
    p = apps_p.add_parser("create", help="create an application and its keys")
    p.add_argument("--name", required=True)
    p.add_argument("--status-url", default="")
    p.add_argument("--private-key-out", help="where to write the PKCS#8 private key (0600)")
    p.add_argument("--account-sid", help="the account it belongs to (default: a new account)")
    p.set_defaults(fn=cmd_apps_create)
    p = apps_p.add_parser("list", help="list applications (no secrets)")
    p.set_defaults(fn=cmd_apps_list)
    p = apps_p.add_parser("update", help="change an application's name or status URL")
    p.add_argument("application_id")
    p.add_argument("--name")
    p.add_argument("--status-url")
    p.add_argument("--enable", action="store_true", help="re-enable a status URL disabled by a 410")
    _sim_swap_arg(p)
    _fraud_args(p, "fraud_check=false")
    p.set_defaults(fn=cmd_apps_update)

    svc = sub.add_parser("services", help="Twilio-dialect services' fraud guard settings")
    svc_sub = svc.add_subparsers(dest="services_command", required=True)
    p = svc_sub.add_parser("update", help="geo permissions and Fraud Guard bypass of a service")
    p.add_argument("service_sid")
    _sim_swap_arg(p)
    p.add_argument(
        "--workflow",
        metavar="NAME",
        help='the workflows file\'s workflow Channel=auto follows ("" goes back to the built-in)',
    )
    _fraud_args(p, "RiskCheck=disable")
    p.set_defaults(fn=cmd_services_update)

    workflows_cli.add_parser(sub)
    templates_cli.add_parser(sub, _settings)

    acc = sub.add_parser("accounts", help="manage accounts (both dialects' tenants)")
    acc_sub = acc.add_subparsers(dest="accounts_command", required=True)
    p = acc_sub.add_parser("create", help="create an account: account_sid and auth_token")
    p.add_argument("--name", required=True)
    p.set_defaults(fn=cmd_accounts_create)
    keys = acc_sub.add_parser("keys", help="API keys").add_subparsers(
        dest="keys_command", required=True
    )
    p = keys.add_parser("create", help="create an API key (SK…) and its secret")
    p.add_argument("--account-sid", required=True)
    p.add_argument("--name", default="")
    p.set_defaults(fn=cmd_api_key_create)

    sb = sub.add_parser("sandbox", help="inspect the sandbox").add_subparsers(
        dest="sandbox_command", required=True
    )
    p = sb.add_parser("messages", help="messages the sandbox providers delivered")
    p.add_argument(
        "--account-sid", required=True, help="the account (an application's account_sid)"
    )
    p.add_argument("--to", required=True)
    p.set_defaults(fn=cmd_sandbox_messages)

    wh = sub.add_parser("webhooks", help="webhook messages whose retries were exhausted")
    wh_sub = wh.add_subparsers(dest="webhooks_command", required=True)
    p = wh_sub.add_parser("failed", help="list exhausted webhook messages, newest first")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(fn=cmd_webhooks_failed)
    p = wh_sub.add_parser("replay", help="deliver exhausted messages again (same webhook-id)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("message_id", nargs="?", help="a message id from `webhooks failed`")
    which.add_argument("--all", action="store_true", help="every exhausted message")
    p.set_defaults(fn=cmd_webhooks_replay)
    return parser


def _hours(value: str) -> int:
    hours = int(value)
    if not 0 <= hours <= 2400:
        raise argparse.ArgumentTypeError("hours from 0 (off) to 2400")
    return hours


def _sim_swap_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sim-swap-max-age",
        type=_hours,
        metavar="HOURS",
        help="send no SMS/WhatsApp/voice code to a number whose SIM changed within HOURS "
        "(checked with the number's operator; 0 turns it off)",
    )


def _fraud_args(p: argparse.ArgumentParser, bypass_param: str) -> None:
    p.add_argument(
        "--geo-allow",
        metavar="CODES",
        help='country calling codes phone sends may go to, e.g. "44,1"; "all" lifts the limit',
    )
    p.add_argument(
        "--allow-fraud-bypass",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"honour {bypass_param} (skips the adaptive per-country budget)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fn: Callable[[argparse.Namespace], int] = args.fn
    return fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
