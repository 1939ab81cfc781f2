"""Named workflows end to end, through real processes (redis-server, serve, a worker, the CLI):
a Vonage `workflow_name` start sends the template's text, calling-code conditions pick the
chain, an unknown name is a 422, the Twilio dialect's `Channel=auto` follows the service's
workflow, webhooks and `send_code_attempts` show the steps taken, `workflows check` and
`simulate` answer as the README prints, SIGHUP swaps the file while requests flow (a
verification keeps its chain), and `serve`/`worker` refuse a bad file in one line.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.client import TestApp, VonageApi, create_app
from tests.support.processes import (
    CLI,
    Stack,
    free_port,
    running_stack,
    trusted_by_requests,
    wait_until,
)
from tests.support.receiver import WebhookReceiver
from tests.support.twilio import Tenant, new_tenant

REPO = Path(__file__).resolve().parents[2]

# the README's worked example ("Authoring workflows"), as printed there
README_FILE = """\
[templates.login-text]
whatsapp = "${brand}: ${code} is your code"
voice = "Your ${brand} code is ${code}"

[templates.login-text.sms]
en = "${brand}: ${code} is your code. It expires in ${time-limit} ${time-limit-unit}."
de = "${brand}: Ihr Code lautet ${code}"

[workflows.login]
template = "login-text"
steps = [
  { channel = "silent_auth", when = { device_ip_covered = true } },
  { channel = "whatsapp", from = "447700900500", timeout = 60, when = { calling_code = ["44", "49"] } },
  { channel = "sms", timeout = 120 },
  { channel = "voice", when = { calling_code = ["1"] } },
]
"""
README_BROKEN = """\
[templates.login-text]
sms = "${brand}: ${cod} is your code"

[workflows.login]
template = "login-text"
steps = [
  { channel = "whatsap" },
  { channel = "sms", when = { country = "GB" } },
  { channel = "voice" },
]
"""
README_CHECK = "verify-orchestrator workflows check workflows.toml"
README_CHECK_OUT = "workflows.toml: ok (1 workflows, 1 templates)\n"
README_BROKEN_CHECK = "verify-orchestrator workflows check broken.toml"
README_BROKEN_OUT = """\
templates.login-text.sms: unknown placeholder ${cod} (known: ${brand}, ${code}, ${time-limit}, ${time-limit-unit})
templates.login-text.sms: the text has no ${code}
workflows.login.steps[0].channel: unknown channel 'whatsap' (one of silent_auth, sms, whatsapp, voice, email)
workflows.login.steps[1].when.country: unknown condition (one of calling_code, number_type, device_ip_covered, sim_swap_within_hours, local_time)
workflows.login.steps[2].channel: template 'login-text' has no voice text
"""
README_SIMULATE_UK = (
    "VERIFY_SANDBOX=true verify-orchestrator workflows simulate login --to +447700900100 "
    "--device-ip 100.64.0.42 --file workflows.toml"
)
README_SIMULATE_UK_OUT = """\
workflow login for +447700900100 (calling code 44, number type unknown, locale en-gb, device IP 100.64.0.42)
  steps[0] silent_auth  kept     device IP 100.64.0.42 is on Sandbox Mobile's mobile network
  steps[1] whatsapp     kept     calling code 44 is in [44, 49]
                        from 447700900500, timeout 60 s, text (default): ${brand}: ${code} is your code
  steps[2] sms          kept     no conditions
                        timeout 120 s, text (en): ${brand}: ${code} is your code. It expires in ${time-limit} ${time-limit-unit}.
  steps[3] voice        skipped  calling code 44 is not in [1]
path: silent_auth -> whatsapp -> sms
"""
README_SIMULATE_US = (
    "VERIFY_SANDBOX=true verify-orchestrator workflows simulate login --to +15555550100 "
    "--file workflows.toml"
)
README_SIMULATE_US_OUT = """\
workflow login for +15555550100 (calling code 1, number type unknown, locale en-us, device IP none)
  steps[0] silent_auth  skipped  no device IP given
  steps[1] whatsapp     skipped  calling code 1 is not in [44, 49]
  steps[2] sms          kept     no conditions
                        timeout 120 s, text (en): ${brand}: ${code} is your code. It expires in ${time-limit} ${time-limit-unit}.
  steps[3] voice        kept     calling code 1 is in [1]
                        text (default): Your ${brand} code is ${code}
path: sms -> voice
"""

# the stack's own file: the README's workflow, plus one SMS-then-voice chain the SIGHUP test
# rewrites
STACK_FILE = (
    README_FILE
    + """
[templates.rotating]
sms = "OLD ${brand} sms ${code}"
voice = "OLD ${brand} voice ${code}"

[workflows.rotating]
template = "rotating"
steps = [{ channel = "sms" }, { channel = "voice" }]
"""
)
ROTATED = """
[templates.rotating]
sms = "NEW ${brand} sms ${code}"

[workflows.rotating]
template = "rotating"
steps = [{ channel = "sms" }]
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def wf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("workflows") / "workflows.toml"
    path.write_text(STACK_FILE)
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, wf_path: Path) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("wf-stack")
    with running_stack(workdir, VERIFY_WORKFLOWS_FILE=str(wf_path)) as s:
        with trusted_by_requests(s):
            yield s


@pytest.fixture(scope="module")
def app(
    stack: Stack, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> TestApp:
    hook = f"/hooks/{uuid.uuid4().hex}"
    return create_app(stack, "workflows", receiver.url(hook), tmp_path_factory.mktemp("k"), hook)


@pytest.fixture(scope="module")
def api(stack: Stack, app: TestApp) -> VonageApi:
    return VonageApi(stack.url, app, str(stack.cert))


def uk() -> str:
    return "4477009" + f"{random.randrange(10**5):05d}"


def us() -> str:
    return "1555555" + f"{random.randrange(10**4):04d}"


# ---- Vonage: workflow_name ---------------------------------------------------------------------


def test_workflow_name_picks_whatsapp_for_44_with_the_templates_text(
    api: VonageApi, receiver: WebhookReceiver
) -> None:
    to = uk()
    resp = api.start({"brand": "ACME", "workflow_name": "login", "to": to})
    assert resp.status_code == 202, resp.text
    rid = resp.json()["request_id"]
    assert "check_url" not in resp.json()  # no device IP: silent auth was skipped
    whatsapp = api.wait_message(to, rid, "whatsapp")
    assert whatsapp["text"] == f"ACME: {whatsapp['code']} is your code"
    assert api.next_workflow(rid).status_code == 200
    sms = api.wait_message(to, rid, "sms")
    # the SMS template's `en` text, in the number's locale (en-gb → en), placeholders filled
    assert sms["text"] == f"ACME: {sms['code']} is your code. It expires in 3 minutes."
    assert api.check(rid, sms["code"]).status_code == 200
    summary = receiver.wait_summary(rid).json
    # the steps actually taken: voice (for +1 only) was never part of this verification
    assert [(w["channel"], w["status"]) for w in summary["workflow"]] == [
        ("whatsapp", "expired"),
        ("sms", "completed"),
    ]


def test_workflow_name_skips_whatsapp_for_1_and_ends_on_voice(
    api: VonageApi, receiver: WebhookReceiver
) -> None:
    to = us()
    resp = api.start({"brand": "ACME", "workflow_name": "login", "to": to})
    assert resp.status_code == 202, resp.text
    rid = resp.json()["request_id"]
    sms = api.wait_message(to, rid)
    assert sms["channel"] == "sms"
    assert api.next_workflow(rid).status_code == 200
    voice = api.wait_message(to, rid, "voice")
    assert voice["text"] == "Your ACME code is " + ", ".join(voice["code"])
    assert api.check(rid, voice["code"]).status_code == 200
    summary = receiver.wait_summary(rid).json
    assert [(w["channel"], w["status"]) for w in summary["workflow"]] == [
        ("sms", "expired"),
        ("voice", "completed"),
    ]


def test_a_covered_device_ip_starts_with_silent_auth(api: VonageApi) -> None:
    resp = api.start(
        {
            "brand": "ACME",
            "workflow_name": "login",
            "to": "447700900100",
            "device_ip": "100.64.0.42",
        }
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["check_url"].endswith("/silent-auth/redirect")
    assert api.cancel(resp.json()["request_id"]).status_code == 204


def test_unknown_name_and_both_or_neither_are_422s(api: VonageApi) -> None:
    resp = api.start({"brand": "ACME", "workflow_name": "logn", "to": uk()})
    assert resp.status_code == 422
    body = resp.json()
    assert body["type"].endswith("#invalid-params")
    assert body["invalid_parameters"] == [
        {"name": "workflow_name", "reason": "No workflow named 'logn'"}
    ]
    to = uk()
    both = {
        "brand": "A",
        "workflow_name": "login",
        "to": to,
        "workflow": [{"channel": "sms", "to": to}],
    }
    for bad in (both, {"brand": "A"}):
        resp = api.start(bad)
        assert resp.status_code == 422
        assert [p["name"] for p in resp.json()["invalid_parameters"]] == ["workflow"]


# ---- Twilio: Channel=auto follows the service's workflow ---------------------------------------


def test_twilio_auto_follows_the_services_workflow(stack: Stack) -> None:
    tenant: Tenant = new_tenant(stack, "wf-twilio", "Acme")
    out = stack.cli("services", "update", tenant.service_sid, "--workflow", "login")
    assert isinstance(out, dict) and out["workflow"] == "login"
    # the setting is not a field of Twilio's Service resource
    fetched = tenant.request("GET", f"/v2/Services/{tenant.service_sid}").json()
    assert "workflow" not in fetched
    to = "+" + us()
    v = tenant.service.verifications.create(to=to, channel="auto")
    assert v.channel == "sms"
    sent = wait_until(lambda: tenant.outbox(to), what="the auto SMS")[0]
    assert sent["text"].startswith(f"Acme: {sent['code']} is your code.")
    assert [a["channel"] for a in v.send_code_attempts] == ["SMS"]
    uk_to = "+" + uk()
    w = tenant.service.verifications.create(to=uk_to, channel="auto")
    assert w.channel == "whatsapp"
    assert [a["channel"] for a in w.send_code_attempts] == ["whatsapp"]
    sent = wait_until(lambda: tenant.outbox(uk_to), what="the auto WhatsApp")[0]
    assert sent["text"] == f"Acme: {sent['code']} is your code"


def test_services_update_refuses_an_unknown_workflow(stack: Stack) -> None:
    tenant = new_tenant(stack, "wf-twilio-2", "Acme")
    done = subprocess.run(
        [*CLI, "services", "update", tenant.service_sid, "--workflow", "nope"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no workflow named 'nope'" in done.stderr


# ---- SIGHUP --------------------------------------------------------------------------------------


def test_sighup_swaps_the_file_while_requests_flow_and_a_verification_keeps_its_chain(
    stack: Stack, api: VonageApi, wf_path: Path
) -> None:
    web = stack.web
    assert web is not None
    before = uk()
    rid = api.start({"brand": "ACME", "workflow_name": "rotating", "to": before}).json()[
        "request_id"
    ]
    assert api.wait_message(before, rid, "sms")["text"].startswith("OLD ACME sms")
    statuses: list[int] = []
    stop = threading.Event()

    def flow() -> None:
        while not stop.is_set():
            to = uk()
            r = api.start({"brand": "ACME", "workflow_name": "rotating", "to": to})
            statuses.append(r.status_code)
            if r.status_code == 202:
                api.cancel(r.json()["request_id"])

    worker = threading.Thread(target=flow)
    worker.start()
    try:
        time.sleep(0.3)
        wf_path.write_text(README_FILE + ROTATED)
        web.send_signal(signal.SIGHUP)

        def new_text() -> bool:
            to = uk()
            r = api.start({"brand": "ACME", "workflow_name": "rotating", "to": to})
            assert r.status_code == 202, r.text
            text: str = api.wait_message(to, r.json()["request_id"])["text"]
            return text.startswith("NEW ACME sms")

        wait_until(new_text, timeout=10, what="a start with the re-read file's text")
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join()
        wf_path.write_text(STACK_FILE)
        web.send_signal(signal.SIGHUP)
    assert statuses and set(statuses) == {202}, statuses  # no request dropped
    assert web.poll() is None
    # the verification started before keeps its two steps and their old texts
    assert api.next_workflow(rid).status_code == 200
    assert api.wait_message(before, rid, "voice")["text"].startswith("OLD ACME voice")


def test_a_bad_file_on_sighup_keeps_the_old_one(
    stack: Stack, api: VonageApi, wf_path: Path
) -> None:
    wf_path.write_text('[workflows.login]\nsteps = [{ channel = "fax" }]\n')
    try:
        assert stack.web is not None
        stack.web.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        resp = api.start({"brand": "ACME", "workflow_name": "login", "to": us()})
        assert resp.status_code == 202, resp.text
        api.cancel(resp.json()["request_id"])
    finally:
        wf_path.write_text(STACK_FILE)
    log = (stack.workdir / "web.log").read_text()
    assert "workflows file not reloaded" in log


# ---- refusing to start ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_serve_and_worker_refuse_a_bad_file_in_one_line(
    stack: Stack, tmp_path: Path, command: list[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(README_BROKEN)
    env = {**stack.env, "VERIFY_WORKFLOWS_FILE": str(bad)}
    if command[0] == "serve":
        command = ["serve", "--port", str(free_port())]
    done = subprocess.run([*CLI, *command], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: workflows file {bad}: ")
    # the same words `workflows check` prints, one per line
    for fault in README_BROKEN_OUT.splitlines():
        assert fault in line


# ---- the README's commands, as printed ----------------------------------------------------------


def _shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFY_")}
    exe = shutil.which("verify-orchestrator")
    if exe is None:  # not installed as a script: the module, under the same name
        shim = cwd / "bin"
        shim.mkdir(exist_ok=True)
        (shim / "verify-orchestrator").write_text(
            f'#!/bin/sh\nexec {sys.executable} -m orchestrator.cli "$@"\n'
        )
        (shim / "verify-orchestrator").chmod(0o755)
        env["PATH"] = f"{shim}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def readme_dir(tmp_path: Path) -> Path:
    (tmp_path / "workflows.toml").write_text(README_FILE)
    (tmp_path / "broken.toml").write_text(README_BROKEN)
    return tmp_path


def test_readme_check_commands(readme_dir: Path) -> None:
    good = _shell(README_CHECK, readme_dir)
    assert (good.returncode, good.stdout) == (0, README_CHECK_OUT), good.stderr
    bad = _shell(README_BROKEN_CHECK, readme_dir)
    assert (bad.returncode, bad.stdout) == (2, README_BROKEN_OUT), bad.stderr


def test_readme_simulate_commands(readme_dir: Path) -> None:
    for command, expected in [
        (README_SIMULATE_UK, README_SIMULATE_UK_OUT),
        (README_SIMULATE_US, README_SIMULATE_US_OUT),
    ]:
        done = _shell(command, readme_dir)
        assert (done.returncode, done.stdout) == (0, expected), done.stderr


def test_simulate_an_unknown_name_exits_2(readme_dir: Path) -> None:
    done = _shell(
        "verify-orchestrator workflows simulate logn --to +447700900100 --file workflows.toml",
        readme_dir,
    )
    assert done.returncode == 2
    assert "no workflow named 'logn'" in done.stderr and "known: login" in done.stderr


def test_the_readme_section_prints_what_these_tests_run() -> None:
    """Once the section is in README.md, its file, commands and outputs are these."""
    readme = (REPO / "README.md").read_text()
    if "## Authoring workflows" not in readme:
        pytest.skip("the README has no Authoring workflows section yet")
    section = readme.split("## Authoring workflows", 1)[1]
    section = re.split(r"\n## ", section, maxsplit=1)[0]
    for text in (
        README_FILE,
        README_BROKEN,
        README_CHECK,
        README_CHECK_OUT,
        README_BROKEN_CHECK,
        README_BROKEN_OUT,
        README_SIMULATE_UK,
        README_SIMULATE_UK_OUT,
        README_SIMULATE_US,
        README_SIMULATE_US_OUT,
    ):
        assert text.strip() in section, text
