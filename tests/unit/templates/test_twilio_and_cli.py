"""Twilio's TemplateSid hook and `verify-orchestrator templates create` against real Redis."""

from __future__ import annotations

import argparse
import json

import pytest
from multidict import MultiDict
from redis.asyncio import Redis

from orchestrator.cli import templates as templates_cli
from orchestrator.cli.devredis import EmbeddedRedis
from orchestrator.dialects.twilio.forms import Form
from orchestrator.dialects.twilio.template_text import twilio_template_text
from orchestrator.domain import errors
from orchestrator.domain.models import Channel, Step
from orchestrator.settings import Settings
from orchestrator.templates import store
from orchestrator.tenants.verify_services import Service

ACCOUNT = "AC" + "a" * 32


def _service(**extra: object) -> Service:
    return Service.model_validate(
        {
            "sid": "VA" + "b" * 32,
            "account_sid": ACCOUNT,
            "friendly_name": "Shop",
            "date_created": "2026-01-01T00:00:00Z",
            "date_updated": "2026-01-01T00:00:00Z",
            **extra,
        }
    )


async def _template(redis: Redis) -> store.Template:
    t = await store.create_template(redis, ACCOUNT, "shop", ["app"])
    await store.add_fragment(redis, ACCOUNT, t.id, "sms", "en", "${brand} ${code} ${app}")
    await store.add_fragment(redis, ACCOUNT, t.id, "voice", "en", "Code ${code}")
    return t


async def _apply(redis: Redis, form: dict[str, str], service: Service, steps: list[Step]) -> None:
    await twilio_template_text(
        redis,
        Form(MultiDict(form)),
        service,
        steps,
        to="15005550006",
        locale=None,
        brand="Shop",
        code_length=6,
    )


async def test_template_sid_fixes_the_text_with_its_substitutions(redis: Redis) -> None:
    t = await _template(redis)
    steps = [Step(channel=Channel.SMS, to="15005550006")]
    form = {"TemplateSid": t.sid, "TemplateCustomSubstitutions": '{"app": "Checkout"}'}
    await _apply(redis, form, _service(), steps)
    assert steps[0].options["template_text"] == "${brand} ${code} Checkout"


async def test_the_service_default_template_applies_to_calls(redis: Redis) -> None:
    t = await _template(redis)
    steps = [Step(channel=Channel.VOICE, to="15005550006")]
    await _apply(redis, {}, _service(default_template_sid=t.sid), steps)
    assert steps[0].options["template_text"] == "Code ${code}"
    untouched = [Step(channel=Channel.SMS, to="15005550006")]
    await _apply(redis, {}, _service(), untouched)
    assert "template_text" not in untouched[0].options


_SUBS = "TemplateCustomSubstitutions"


@pytest.mark.parametrize(
    ("form", "named"),
    [
        ({"TemplateSid": "HJ" + "0" * 32}, "TemplateSid"),
        ({"TemplateSid": "nope"}, "TemplateSid"),
        ({}, _SUBS),  # the sms text uses ${app}: a substitution is required
        ({_SUBS: '{"other": "x"}'}, _SUBS),
        ({_SUBS: '{"app": "' + "x" * 21 + '"}'}, _SUBS),
        ({_SUBS: '{"app": "${code}"}'}, _SUBS),
        ({_SUBS: '{"app": true}'}, _SUBS),
        ({_SUBS: "[1]"}, _SUBS),
    ],
)
async def test_bad_template_parameters_are_60200s_naming_them(
    redis: Redis, form: dict[str, str], named: str
) -> None:
    t = await _template(redis)
    full = {"TemplateSid": t.sid, **form}
    with pytest.raises(errors.InvalidParameters) as exc:
        await _apply(redis, full, _service(), [Step(channel=Channel.SMS, to="15005550006")])
    assert exc.value.problems[0][0] == named


def _cli(redis_server: EmbeddedRedis, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    templates_cli.add_parser(sub, lambda: Settings(redis_url=redis_server.url))
    args = parser.parse_args(["templates", *argv])
    result: int = args.fn(args)
    return result


def test_cli_creates_once_and_adds_fragments(
    redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    account = "AC" + "c" * 32
    base = ["create", "--account", account, "--name", "login", "--channel", "sms"]
    # no such account yet
    assert _cli(redis_server, *base, "--locale", "en", "--text", "{{code}}") == 1
    assert "no account" in capsys.readouterr().err


def test_cli_refuses_bad_texts_and_adds_locales(
    redis_server: EmbeddedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    account = "app-" + "d" * 8  # an application id: no account record is needed
    base = ["create", "--account", account, "--name", "login", "--channel", "sms"]
    assert _cli(redis_server, *base, "--locale", "en", "--text", "no code here") == 1
    assert "${code}" in capsys.readouterr().err
    assert _cli(redis_server, *base, "--locale", "en", "--text", "{{code}} " + "x" * 150) == 1
    assert "segment" in capsys.readouterr().err
    assert _cli(redis_server, *base, "--locale", "en", "--text", "{{friendly_name}}: {{code}}") == 0
    first = json.loads(capsys.readouterr().out)
    assert first["fragment"]["text"] == "${brand}: ${code}" and first["is_default"] is True
    assert _cli(redis_server, *base, "--locale", "de", "--text", "Code {{code}}") == 0
    second = json.loads(capsys.readouterr().out)
    assert second["template_id"] == first["template_id"]
    assert _cli(redis_server, *base, "--locale", "de", "--text", "Code {{code}}") == 1
    assert "fragment exists" in capsys.readouterr().err
    assert _cli(redis_server, "list", "--account", account) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert [f["locale"] for f in listed["fragments"]] == ["en", "de"]
