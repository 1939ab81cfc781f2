"""`verify-orchestrator workflows check|simulate`: a workflow author's tools, no server needed.

`check` lists every fault of a workflows file (the words `serve` and `worker` refuse it with);
`simulate` prints the path a number would take through a named workflow, step by step, with
the reason each step is kept or skipped — computed by the same `plan` a start uses, against the
operators this environment configures (the sandbox operator's table in sandbox mode).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.settings import Settings
from orchestrator.workflows.file import WorkflowsFile, WorkflowsFileError, load_workflows

__all__ = ["add_parser", "check_service_workflow"]

_NO_FILE = "no workflows file: give FILE (--file) or set VERIFY_WORKFLOWS_FILE"


def add_parser(sub: Any) -> None:
    """The `workflows` command group, on the main parser's subparsers."""
    wf = sub.add_parser("workflows", help="check a workflows file, simulate a workflow")
    wf_sub = wf.add_subparsers(dest="workflows_command", required=True)
    p = wf_sub.add_parser("check", help="list every fault of a workflows file (exit 2 if any)")
    p.add_argument("file", nargs="?", help="the file (default: VERIFY_WORKFLOWS_FILE)")
    p.set_defaults(fn=cmd_check)
    p = wf_sub.add_parser("simulate", help="the path a number would take through a workflow")
    p.add_argument("name", help="the workflow's name")
    p.add_argument("--to", required=True, help="the number, E.164 (+447700900123)")
    p.add_argument("--device-ip", help="the device's IP address (for device_ip_covered)")
    p.add_argument("--email", help="the e-mail address for email steps")
    p.add_argument("--locale", help="the verification's locale (default: the number's)")
    p.add_argument("--at", help="the time to simulate, ISO 8601 (default: now; for local_time)")
    p.add_argument("--file", help="the workflows file (default: VERIFY_WORKFLOWS_FILE)")
    p.set_defaults(fn=cmd_simulate)


def _settings() -> Settings | str:
    try:
        return Settings()
    except ValidationError as exc:
        return f"invalid settings: {exc.errors()[0]['msg']}"


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _load(settings: Settings, given: str | None) -> WorkflowsFile | int:
    path = Path(given) if given else settings.workflows_file
    if path is None:
        return _fail(_NO_FILE)
    try:
        return load_workflows(path)
    except WorkflowsFileError as exc:
        for fault in exc.faults:
            print(fault)
        return 2


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings()
    if isinstance(settings, str):
        return _fail(settings)
    loaded = _load(settings, args.file)
    if isinstance(loaded, int):
        return loaded
    print(
        f"{loaded.source}: ok ({len(loaded.workflows)} workflows, "
        f"{len(loaded.templates)} templates)"
    )
    return 0


def check_service_workflow(settings: Settings, name: str) -> str | None:
    """Why `services update --workflow NAME` can't name `name` ("" clears it: always fine)."""
    if not name:
        return None
    if settings.workflows_file is None:
        return "VERIFY_WORKFLOWS_FILE is not set, so no workflow can be named"
    try:
        loaded = load_workflows(settings.workflows_file)
    except WorkflowsFileError as exc:
        return str(exc)
    if name not in loaded.workflows:
        return f"no workflow named {name!r} in {loaded.source}"
    return None


def cmd_simulate(args: argparse.Namespace) -> int:
    from orchestrator.phone import parse_number

    settings = _settings()
    if isinstance(settings, str):
        return _fail(settings)
    loaded = _load(settings, args.file)
    if isinstance(loaded, int):
        return loaded
    if args.name not in loaded.workflows:
        known = ", ".join(sorted(loaded.workflows)) or "none"
        return _fail(f"no workflow named {args.name!r} in {loaded.source} (known: {known})")
    digits = args.to.removeprefix("+")
    if not args.to.startswith("+") or parse_number(digits, sandbox=settings.sandbox) is None:
        return _fail(f"--to {args.to!r}: not an E.164 number such as +447700900123")
    now = datetime.now(UTC)
    if args.at:
        try:
            now = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            return _fail(f"--at {args.at!r}: not an ISO 8601 time")
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
    try:
        return asyncio.run(_simulate(settings, loaded, args, digits, now))
    except Exception as exc:  # an unusable operators file, mostly: one line, no traceback
        from orchestrator.operators.operators_file import OperatorsFileError

        if isinstance(exc, OperatorsFileError):
            return _fail(str(exc))
        raise


async def _simulate(
    settings: Settings, loaded: WorkflowsFile, args: argparse.Namespace, digits: str, now: datetime
) -> int:
    import aiohttp
    from redis.asyncio import Redis

    from orchestrator.engine import messages
    from orchestrator.operators.operators_file import build_operators, operators_config_for
    from orchestrator.operators.sandbox import OperatorTable, SandboxOperator
    from orchestrator.phone import number_of
    from orchestrator.workflows.conditions import number_type_name
    from orchestrator.workflows.plan import plan

    config = operators_config_for(settings)
    table = OperatorTable.load(settings.resolve_path(settings.sandbox_operator_table))
    # the sandbox operator answers from its table; its Redis client is never connected here
    redis = Redis.from_url(settings.redis_url)
    sandbox = SandboxOperator(redis, table, settings.public_url)
    async with aiohttp.ClientSession() as http:
        operators = build_operators(
            config,
            http=http,
            secret=b"workflows-simulate",  # keys PKCE verifiers; simulate redeems no code
            sandbox_operator=sandbox if settings.sandbox else None,
        )
        result = await plan(
            loaded,
            args.name,
            to=digits,
            operators=operators,
            now=now,
            device_ip=args.device_ip,
            email=args.email,
        )
    await redis.aclose()
    number = number_of(digits)
    locale = (
        messages.normalize_locale(args.locale) if args.locale else None
    ) or messages.default_locale_for_number(number)
    code = str(number.country_code) if number is not None else digits[:3]
    print(
        f"workflow {args.name} for +{digits} (calling code {code}, "
        f"number type {number_type_name(number)}, locale {locale}, device IP {args.device_ip or 'none'})"
    )
    width = max(len(s.spec.channel.value) for s in result.steps)
    for step in result.steps:
        verdict = "kept   " if step.kept else "skipped"
        print(f"  steps[{step.index}] {step.spec.channel.value:<{width}}  {verdict}  {step.reason}")
        if step.kept:
            details = []
            if step.spec.sender:
                details.append(f"from {step.spec.sender}")
            if step.spec.timeout:
                details.append(f"timeout {step.spec.timeout} s")
            found = result.text_for(step, locale)
            if found is not None:
                details.append(f"text ({found[1]}): {found[0]}")
            if details:
                print(" " * (13 + width) + ", ".join(details))
    kept = [s.spec.channel.value for s in result.kept]
    if not kept:
        print("path: none (a start would be refused)")
        return 1
    print("path: " + " -> ".join(kept))
    return 0
