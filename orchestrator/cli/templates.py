"""`verify-orchestrator templates create|list`: an account's message templates from the shell.

Twilio's Templates API has no create, so a Twilio-dialect account's templates (its TemplateSid
values) are written here; the Vonage dialect's own Templates API writes the same records.
`create` adds a fragment (channel + locale + text) to the account's template of that name,
creating the template first if it has none. Texts may use Twilio's `{{code}}`,
`{{friendly_name}}`, `{{ttl}}` or Vonage's `${code}`, `${brand}`, `${time-limit}`,
`${time-limit-unit}`; `--variable NAME` declares an author-defined `${NAME}` that a start's
TemplateCustomSubstitutions fills. The checks are the APIs' (orchestrator/templates/rules.py).

Registered by orchestrator/cli/main.py (`add_parser(sub, _settings)`): the settings loader
is passed in, so this module does not import the CLI's main module back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from orchestrator.settings import Settings
from orchestrator.templates import rules, store
from orchestrator.tenants import accounts

__all__ = ["add_parser"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LOCALE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _fragment_json(t: store.Template, f: store.Fragment) -> dict[str, Any]:
    return {
        "template_id": t.id,
        "sid": t.sid,
        "name": t.name,
        "is_default": t.is_default,
        "variables": t.variables,
        "fragment": {
            "template_fragment_id": f.id,
            "channel": f.channel,
            "locale": f.locale,
            "text": f.text,
        },
    }


async def _create(redis: Redis, args: argparse.Namespace) -> int:
    if not _NAME.fullmatch(args.name):
        return _fail("--name must be 1-64 letters, digits, '_' or '-'")
    locale = args.locale.lower().replace("_", "-")
    if not _LOCALE.fullmatch(locale):
        return _fail(f"--locale {args.locale!r} is not a locale such as en or en-gb")
    variables: list[str] = args.variable or []
    bad = [v for v in variables if not re.fullmatch(rules.VARIABLE_PATTERN, v)]
    if bad:
        return _fail(f"--variable {bad[0]!r}: lowercase letters, digits and '_'")
    if args.account.startswith("AC") and await accounts.get_account(redis, args.account) is None:
        return _fail(f"no account {args.account}")
    text = rules.canonical(args.text)
    existing = {t.name: t for t in await store.list_templates(redis, args.account)}
    template = existing.get(args.name)
    known = sorted({*variables, *(template.variables if template else [])})
    problems = rules.text_problems(text, args.channel, known)
    if problems:
        return _fail("--text: " + "; ".join(problems))
    try:
        if template is None:
            template = await store.create_template(redis, args.account, args.name, known)
        elif variables and set(variables) - set(template.variables):
            return _fail(f"template {args.name} was created with --variable {template.variables}")
        f = await store.add_fragment(redis, args.account, template.id, args.channel, locale, text)
    except store.TemplateError as exc:
        return _fail(exc.kind.replace("-", " "))
    print(json.dumps(_fragment_json(template, f), indent=2))
    return 0


async def _list(redis: Redis, args: argparse.Namespace) -> int:
    found = await store.list_templates(redis, args.account)
    body = [
        {
            "template_id": t.id,
            "sid": t.sid,
            "name": t.name,
            "is_default": t.is_default,
            "variables": t.variables,
            "fragments": [
                {"template_fragment_id": f.id, "channel": f.channel, "locale": f.locale}
                for f in t.fragments
            ],
        }
        for t in found
    ]
    print(json.dumps(body, indent=2))
    return 0


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: Callable[[], Settings]
) -> None:
    """The `templates` command and its subcommands, on the CLI's subparsers."""

    def runner(
        fn: Callable[[Redis, argparse.Namespace], Any],
    ) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            async def go() -> int:
                redis = Redis.from_url(settings().redis_url)
                try:
                    result: int = await fn(redis, args)
                    return result
                finally:
                    await redis.aclose()

            return asyncio.run(go())

        return run

    tpl = sub.add_parser("templates", help="an account's message templates (both dialects)")
    tpl_sub = tpl.add_subparsers(dest="templates_command", required=True)
    p = tpl_sub.add_parser("create", help="add a channel+locale text to a template (created once)")
    p.add_argument("--account", required=True, help="the account (AC…, or an application id)")
    p.add_argument("--name", required=True, help="the template's name (unique per account)")
    p.add_argument("--channel", required=True, choices=rules.CHANNELS)
    p.add_argument("--locale", required=True, help="e.g. en, en-gb, de")
    p.add_argument("--text", required=True, help="the text, with ${code} or {{code}} in it")
    p.add_argument(
        "--variable",
        action="append",
        help="an author-defined ${NAME} that TemplateCustomSubstitutions fills (repeatable)",
    )
    p.set_defaults(fn=runner(_create))
    p = tpl_sub.add_parser("list", help="an account's templates and their fragments")
    p.add_argument("--account", required=True)
    p.set_defaults(fn=runner(_list))
