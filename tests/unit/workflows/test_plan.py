"""A named workflow for one number: kept and skipped steps with their reasons, the domain
steps a start gets (sender, per-step timeout, the template text for the locale), the locale
choice, the Vonage dialect's workflow_name parsing, and a per-step timeout in the domain."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.dialects.vonage import wire
from orchestrator.domain import errors
from orchestrator.domain.effects import ScheduleTimeout
from orchestrator.domain.models import Channel, Step
from orchestrator.domain.transition import begin
from orchestrator.workflows.file import WorkflowsFile, parse_workflows
from orchestrator.workflows.plan import UnknownWorkflow, plan
from tests.unit.domain.test_transition import FakeTools, make
from tests.unit.workflows.helpers import operators

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
FILE = """
[templates.login-text]
whatsapp = "${brand}: ${code} is your code"
voice = "Your ${brand} code is ${code}"

[templates.login-text.sms]
en = "${brand}: ${code} is your code"
en-gb = "${brand}: your code is ${code}"
de = "${brand}: Ihr Code ist ${code}"
default = "${code}"

[workflows.login]
template = "login-text"
steps = [
  { channel = "silent_auth", when = { device_ip_covered = true } },
  { channel = "whatsapp", from = "447700900500", timeout = 60, when = { calling_code = ["44", "49"] } },
  { channel = "sms", timeout = 120 },
  { channel = "voice", when = { calling_code = ["1"] } },
]

[workflows.mail]
steps = [{ channel = "email" }, { channel = "sms" }]
"""


def loaded() -> WorkflowsFile:
    return parse_workflows(tomllib.loads(FILE))


async def test_plus_44_on_mobile_data_takes_silent_auth_whatsapp_and_sms() -> None:
    p = await plan(
        loaded(),
        "login",
        to="447700900100",
        operators=operators(),
        now=NOW,
        device_ip="100.64.0.42",
    )
    assert [(s.spec.channel.value, s.kept, s.reason) for s in p.steps] == [
        ("silent_auth", True, "device IP 100.64.0.42 is on Sandbox Mobile's mobile network"),
        ("whatsapp", True, "calling code 44 is in [44, 49]"),
        ("sms", True, "no conditions"),
        ("voice", False, "calling code 44 is not in [1]"),
    ]
    steps = p.domain_steps("en-gb")
    assert [s.channel for s in steps] == [Channel.SILENT_AUTH, Channel.WHATSAPP, Channel.SMS]
    assert steps[0].options == {"device_ip": "100.64.0.42"}
    assert steps[1].sender == "447700900500"
    assert steps[1].options == {
        "template_text": "${brand}: ${code} is your code",
        "timeout": 60,
    }
    assert steps[2].options == {"template_text": "${brand}: your code is ${code}", "timeout": 120}
    assert all(s.to == "447700900100" for s in steps)


async def test_plus_1_skips_whatsapp_and_ends_on_voice() -> None:
    p = await plan(loaded(), "login", to="+15555550100", operators=operators(), now=NOW)
    assert [(s.spec.channel.value, s.kept) for s in p.steps] == [
        ("silent_auth", False),
        ("whatsapp", False),
        ("sms", True),
        ("voice", True),
    ]
    assert p.steps[0].reason == "no device IP given"
    assert [s.channel for s in p.domain_steps("en-us")] == [Channel.SMS, Channel.VOICE]


async def test_silent_auth_is_skipped_where_no_operator_covers_the_number() -> None:
    p = await plan(
        loaded(),
        "login",
        to="4915123456789",
        operators=operators(),
        now=NOW,
        device_ip="100.64.0.42",
    )
    assert (p.steps[0].kept, p.steps[0].reason) == (False, "no operator covers +4915123456789")


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        ("en-gb", "${brand}: your code is ${code}"),  # the exact locale
        ("en-us", "${brand}: ${code} is your code"),  # its language
        ("de-de", "${brand}: Ihr Code ist ${code}"),
        ("fr-fr", "${code}"),  # the plain per-channel text
    ],
)
async def test_the_locale_picks_the_text(locale: str, text: str) -> None:
    p = await plan(loaded(), "login", to="447700900100", operators=operators(), now=NOW)
    sms = next(s for s in p.domain_steps(locale) if s.channel is Channel.SMS)
    assert sms.options["template_text"] == text


async def test_a_locale_table_without_a_match_keeps_the_catalogue_text() -> None:
    f = parse_workflows(
        tomllib.loads(
            '[templates.t.sms]\nde = "Code ${code}"\n'
            '[workflows.w]\ntemplate = "t"\nsteps = [{ channel = "sms" }]\n'
        )
    )
    p = await plan(f, "w", to="447700900100", operators=operators(), now=NOW)
    assert p.domain_steps("fr-fr")[0].options == {}
    assert p.domain_steps("de-at")[0].options == {"template_text": "Code ${code}"}


async def test_email_steps_go_to_the_email_or_are_skipped() -> None:
    with_mail = await plan(
        loaded(), "mail", to="447700900100", operators=operators(), now=NOW, email="a@example.com"
    )
    assert [s.to for s in with_mail.domain_steps("en")] == ["a@example.com", "447700900100"]
    without = await plan(loaded(), "mail", to="447700900100", operators=operators(), now=NOW)
    assert (without.steps[0].kept, without.steps[0].reason) == (False, "no e-mail address given")


async def test_an_unknown_name() -> None:
    with pytest.raises(UnknownWorkflow, match="no workflow named 'logn'"):
        await plan(loaded(), "logn", to="447700900100", operators=operators(), now=NOW)


# ---- the Vonage dialect -------------------------------------------------------------------------


def test_vonage_takes_workflow_or_workflow_name_not_both_nor_neither() -> None:
    req = wire.parse_start({"brand": "ACME", "workflow_name": "login", "to": "447700900100"})
    assert (req.workflow_name, req.to, req.workflow) == ("login", "447700900100", None)
    for body, name in [
        ({"brand": "ACME"}, "workflow"),
        (
            {
                "brand": "ACME",
                "workflow_name": "login",
                "to": "447700900100",
                "workflow": [{"channel": "sms", "to": "447700900100"}],
            },
            "workflow",
        ),
        ({"brand": "ACME", "workflow_name": "login"}, "to"),
    ]:
        with pytest.raises(errors.InvalidParameters) as info:
            wire.parse_start(body)
        assert [n for n, _ in info.value.problems] == [name]


async def test_vonage_unknown_workflow_name_is_a_422_naming_it() -> None:
    req = wire.parse_start({"brand": "ACME", "workflow_name": "nope", "to": "447700900100"})
    with pytest.raises(errors.InvalidParameters) as info:
        await wire.plan_start(req, loaded(), operators=operators(), now=NOW)
    assert info.value.problems == [("workflow_name", "No workflow named 'nope'")]
    status, body = wire.problem_for(info.value)
    assert status == 422
    assert body["invalid_parameters"] == [
        {"name": "workflow_name", "reason": "No workflow named 'nope'"}
    ]


async def test_vonage_workflow_name_builds_the_planned_steps_in_the_numbers_locale() -> None:
    req = wire.parse_start({"brand": "ACME", "workflow_name": "login", "to": "4915123456789"})
    p = await wire.plan_start(req, loaded(), operators=operators(), now=NOW)
    v = wire.build_verification(
        req, tenant="app", account="acc", now=NOW, sandbox=True, notify=False, plan=p
    )
    assert v.locale == "de-de"
    assert [s.channel for s in v.steps] == [Channel.WHATSAPP, Channel.SMS]
    assert v.steps[1].options["template_text"] == "${brand}: Ihr Code ist ${code}"


async def test_vonage_workflow_name_with_a_bad_number_names_to() -> None:
    req = wire.parse_start({"brand": "ACME", "workflow_name": "login", "to": "12"})
    p = await wire.plan_start(req, loaded(), operators=operators(), now=NOW)
    with pytest.raises(errors.InvalidParameters) as info:
        wire.build_verification(
            req, tenant="app", account="acc", now=NOW, sandbox=True, notify=False, plan=p
        )
    assert [n for n, _ in info.value.problems] == ["to"]


# ---- the domain: a step's own timeout -----------------------------------------------------------


def test_a_steps_own_timeout_replaces_channel_timeout() -> None:
    v = make("sms", "voice", channel_timeout=300)
    v.steps[0] = Step(channel=Channel.SMS, to=v.steps[0].to, options={"timeout": 45})
    t = begin(v, NOW, FakeTools())
    [timeout] = [e for e in t.effects if isinstance(e, ScheduleTimeout)]
    assert timeout.at == NOW + timedelta(seconds=45)


def test_a_steps_own_timeout_applies_where_code_steps_dont_time_out() -> None:
    v = make("sms")
    v.rules = v.rules.model_copy(update={"step_timeouts": False})
    assert not [e for e in begin(v, NOW, FakeTools()).effects if isinstance(e, ScheduleTimeout)]
    v = make("sms")
    v.rules = v.rules.model_copy(update={"step_timeouts": False})
    v.steps[0].options["timeout"] = 60
    [timeout] = [e for e in begin(v, NOW, FakeTools()).effects if isinstance(e, ScheduleTimeout)]
    assert timeout.at == NOW + timedelta(seconds=60)
