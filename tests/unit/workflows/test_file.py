"""The workflows file: the issue's example loads as written, and each fault is one line naming
the workflow (or template), the step index and the field — all of them, not just the first."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from orchestrator.domain.models import Channel
from orchestrator.workflows.file import (
    WorkflowsFileError,
    check_workflows,
    load_workflows,
    parse_workflows,
)

ISSUE_EXAMPLE = """
[templates.login-text]
sms = "${brand}: ${code} is your code"
whatsapp = "${brand}: ${code} is your code"
voice = "Your ${brand} code is ${code}"

[workflows.login]
template = "login-text"
steps = [
  { channel = "silent_auth", when = { device_ip_covered = true } },
  { channel = "whatsapp", from = "447700900500", timeout = 60, when = { calling_code = ["44", "49"] } },
  { channel = "sms", timeout = 120 },
  { channel = "voice", when = { calling_code = ["1"] } },
]
"""


def faults(text: str) -> list[str]:
    with pytest.raises(WorkflowsFileError) as info:
        parse_workflows(tomllib.loads(text), "w.toml")
    return info.value.faults


def test_the_issues_example_loads_with_every_key() -> None:
    loaded = parse_workflows(tomllib.loads(ISSUE_EXAMPLE))
    login = loaded.workflows["login"]
    assert login.template == "login-text"
    assert [s.channel for s in login.steps] == [
        Channel.SILENT_AUTH,
        Channel.WHATSAPP,
        Channel.SMS,
        Channel.VOICE,
    ]
    whatsapp = login.steps[1]
    assert (whatsapp.sender, whatsapp.timeout) == ("447700900500", 60)
    assert dict(whatsapp.when) == {"calling_code": ("44", "49")}
    assert dict(login.steps[0].when) == {"device_ip_covered": True}
    assert (
        loaded.templates["login-text"].texts["voice"]["default"] == "Your ${brand} code is ${code}"
    )


def test_per_locale_tables_and_every_condition_load() -> None:
    loaded = parse_workflows(
        tomllib.loads(
            """
[templates.t.sms]
en = "${code} is your code"
DE = "Ihr Code: ${code}"
default = "code ${code}"

[workflows.w]
template = "t"

[[workflows.w.steps]]
channel = "sms"
when.calling_code = [44, "1"]
when.number_type = "mobile"
when.device_ip_covered = false
when.sim_swap_within_hours = 24
when.local_time = { between = ["08:00", "21:00"] }
"""
        )
    )
    assert dict(loaded.templates["t"].texts["sms"]) == {
        "en": "${code} is your code",
        "de": "Ihr Code: ${code}",
        "default": "code ${code}",
    }
    assert dict(loaded.workflows["w"].steps[0].when) == {
        "calling_code": ("44", "1"),
        "number_type": ("mobile",),
        "device_ip_covered": False,
        "sim_swap_within_hours": 24,
        "local_time": ("08:00", "21:00"),
    }


def test_an_unknown_channel_names_workflow_step_and_field() -> None:
    found = faults('[workflows.login]\nsteps = [{ channel = "sms" }, { channel = "whatsap" }]\n')
    assert found == [
        "workflows.login.steps[1].channel: unknown channel 'whatsap' "
        "(one of silent_auth, sms, whatsapp, voice, email)"
    ]


def test_an_unknown_condition_key_is_named() -> None:
    found = faults('[workflows.login]\nsteps = [{ channel = "sms", when = { country = "GB" } }]\n')
    assert found == [
        "workflows.login.steps[0].when.country: unknown condition (one of calling_code, "
        "number_type, device_ip_covered, sim_swap_within_hours, local_time)"
    ]


def test_a_template_missing_a_channel_the_workflow_uses() -> None:
    found = faults(
        '[templates.t]\nsms = "${code}"\n'
        '[workflows.login]\ntemplate = "t"\nsteps = [{ channel = "sms" }, { channel = "voice" }]\n'
    )
    assert found == ["workflows.login.steps[1].channel: template 't' has no voice text"]


def test_a_placeholder_typo_is_named_with_the_known_ones() -> None:
    found = faults('[templates.t.sms]\nen = "${brand}: ${cod} is your code"\n')
    assert found == [
        "templates.t.sms.en: unknown placeholder ${cod} (known: ${brand}, ${code}, "
        "${time-limit}, ${time-limit-unit})",
        "templates.t.sms.en: the text has no ${code}",
    ]


def test_every_fault_is_listed_one_per_line() -> None:
    found = faults(
        """
[templates.t]
sms = "${code}"
email = "${code}"

[workflows.login]
template = "nope"
colour = "red"

[[workflows.login.steps]]
channel = "sms"
timeout = 5
fro = "x"

[[workflows.login.steps]]
channel = "silent_auth"

[[workflows.login.steps]]
channel = "voice"
when.calling_code = ["0"]
when.number_type = "cell"
when.local_time = { between = ["8am", "21:00"] }
when.sim_swap_within_hours = 0
when.device_ip_covered = "yes"

[workflows.empty]
steps = []
"""
    )
    assert found == [
        "templates.t.email: unknown channel; texts are for sms, whatsapp, voice "
        "(email keeps the built-in subject and body)",
        "workflows.login.colour: unknown key (one of template, steps)",
        "workflows.login.template: no template named 'nope'",
        "workflows.login.steps[0].fro: unknown key (one of channel, from, timeout, when)",
        "workflows.login.steps[0].timeout: seconds, a whole number from 15 to 900",
        "workflows.login.steps[1].channel: silent_auth must be the first step",
        "workflows.login.steps[2].when.calling_code: not a calling code: 0",
        "workflows.login.steps[2].when.number_type: unknown number type 'cell' (one of "
        "fixed_line, mobile, fixed_line_or_mobile, toll_free, premium_rate, shared_cost, voip, "
        "personal_number, pager, uan, voicemail, unknown)",
        'workflows.login.steps[2].when.local_time: { between = ["HH:MM", "HH:MM"] } '
        "(24-hour clock)",
        "workflows.login.steps[2].when.sim_swap_within_hours: hours, a whole number from 1 to 2400",
        "workflows.login.steps[2].when.device_ip_covered: true or false",
        "workflows.empty.steps: required, a list of one or more steps",
    ]
    assert all("\n" not in f for f in found)


def test_the_error_is_one_line_with_the_same_words(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[workflows.a]\nsteps = [{ channel = "fax" }]\nother = 1\n')
    with pytest.raises(WorkflowsFileError) as info:
        load_workflows(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"workflows file {path}: ")
    for fault in check_workflows(path):
        assert fault in text
    assert len(check_workflows(path)) == 2


def test_unreadable_and_broken_toml_are_one_fault(tmp_path: Path) -> None:
    assert check_workflows(tmp_path / "missing.toml")[0].startswith("can't be read")
    broken = tmp_path / "b.toml"
    broken.write_text("[workflows.a\n")
    [fault] = check_workflows(broken)
    assert fault.startswith("not valid TOML")


def test_a_silent_auth_step_takes_no_sender_or_timeout() -> None:
    found = faults(
        '[workflows.a]\nsteps = [{ channel = "silent_auth", from = "x", timeout = 60 }]\n'
    )
    assert found == [
        "workflows.a.steps[0].from: silent_auth sends nothing, so it has no sender",
        "workflows.a.steps[0].timeout: silent_auth's timeout is fixed",
    ]


def test_templates_are_not_required_and_the_catalogue_stays() -> None:
    loaded = parse_workflows(tomllib.loads('[workflows.a]\nsteps = [{ channel = "voice" }]\n'))
    assert loaded.workflows["a"].template is None
    assert loaded.template_of(loaded.workflows["a"]) is None
