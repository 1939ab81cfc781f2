"""What `verify-orchestrator dev` and the README tell a new user to paste runs as printed (issue 14).

One real `verify-orchestrator dev` (free port, a temp directory as its working directory, so
its data dir `./.verify-dev` is temporary and the README's CLI commands reach its Redis the way
they reach a user's) prints its banner; every snippet in it is taken from the captured banner
and run: curl through bash, Python through `sys.executable`. The only edits are the ones a user
makes from earlier output: REQUEST_ID, the code the sandbox "sent", the VA... service sid. A
snippet added to the banner without a case here fails `test_every_banner_snippet_is_covered`.

The README's "Quick start" and "Using the API" sections (its intro, "curl (Basic auth)",
"Python, official Vonage SDK", "Twilio dialect") run against the same instance, block by block
in the order printed, with what the README names as the user's to fill in: `127.0.0.1:8080`
becomes the dev port (Quick start says dev serves there), $API_KEY/$API_SECRET/APP_ID come from
`apps create`, $ACCOUNT_SID/$AUTH_TOKEN from `accounts create`, $REQUEST_ID/$SERVICE_SID from
the previous answer, codes from the sandbox outbox, and the SDKs' `verify.internal.example`
becomes a `verify-orchestrator serve --certfile/--keyfile` on the dev Redis with
REQUESTS_CA_BUNDLE, as the README says. Python blocks run statement by statement, as typed into
a REPL, so the code is read from the outbox when the statement that needs it comes.
The Quick start's `pip install` and `python -m pytest` lines are not run here (the suite runs
the suite); its `verify-orchestrator dev` is the instance itself. The Factors section's TOTP
block runs too (it once had defects: pyotp not imported, and the challenge reused the code
that had just verified the factor, which the replay guard refuses). Not run: the `verify_device` block (it needs an access
token and a backend challenge that are only comments) and the operators-file TOML.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.processes import free_port, make_tls_cert, wait_until

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
NUMBER = "447700900000"

BANNER_HEADINGS = [
    "Start a verification:",
    'Read the code the sandbox "sent":',
    "Check it:",
    "Twilio dialect (create a service once, then verifications):",
    "Passkeys demo (a real authenticator in your browser; localhost is a secure context):",
    "Python (official vonage SDK; it speaks https only, so send it through plain http here):",
]


@dataclass
class Dev:
    cwd: Path
    port: int
    env: dict[str, str]
    banner: str
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _shim(bin_dir: Path) -> None:
    """`verify-orchestrator` on PATH, as `pip install -e .` puts it, for this interpreter."""
    bin_dir.mkdir()
    shim = bin_dir / "verify-orchestrator"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m orchestrator.cli "$@"\n')
    shim.chmod(0o755)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    root = tmp_path_factory.mktemp("printed")
    cwd = root / "home"
    cwd.mkdir()
    _shim(root / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFY_")}
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.update(
        {
            "PATH": f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
    )
    port = free_port()
    log = root / "dev.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["verify-orchestrator", "dev", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def banner() -> str | None:
            text = log.read_text(errors="replace")
            if proc.poll() is not None:
                raise AssertionError(f"dev exited {proc.returncode}: {text[-3000:]}")
            return text if "print(client.verify.start_verification" in text else None

        yield Dev(cwd, port, env, wait_until(banner, timeout=60, what="the dev banner"), log)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---- running what is printed ------------------------------------------------------------------


def _bash(dev: Dev, command: str, **env: str) -> str:
    out = subprocess.run(
        ["bash", "-c", command],
        cwd=dev.cwd,
        env={**dev.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"{command}\n{out.stderr}"
    return out.stdout


def _commands(block: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments and blanks dropped."""
    commands: list[str] = []
    pending = ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if not line.rstrip().endswith("\\"):
            commands.append(pending.rstrip("\n"))
            pending = ""
    assert not pending, f"a dangling continuation in {block!r}"
    return commands


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not JSON: {text[:500]!r}") from exc


def _sandbox_code(dev: Dev, user: str, password: str, to: str, request_id: str) -> str:
    def find() -> str | None:
        resp = requests.get(
            dev.url + "/sandbox/v1/messages", params={"to": to}, auth=(user, password), timeout=5
        )
        resp.raise_for_status()
        for message in resp.json():
            if message.get("request_id") == request_id and message.get("code"):
                return str(message["code"])
        return None

    found: str = wait_until(find, timeout=20, interval=0.1, what=f"the code of {request_id}")
    return found


# Runs a Python block statement by statement in one namespace, as typed into a REPL. Before a
# statement that needs the code (argv[2]: {"before": <text in it>, "find": how to read it}),
# it reads it from the sandbox outbox (the user reading the SMS) and defines/replaces it.
_REPL = r"""
import ast, json, sys, time
import requests

block, plan = sys.stdin.read(), json.loads(sys.argv[1])
namespace = {"__name__": "__main__", **plan["names"]}

def code_for(request_id):
    found = plan["code"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = requests.get(found["url"], params={"to": found["to"]}, auth=tuple(found["auth"]),
                           timeout=5)
        got.raise_for_status()
        for m in got.json():
            if (request_id is None or m.get("request_id") == request_id) and m.get("code"):
                return str(m["code"])
        time.sleep(0.1)
    raise SystemExit(f"no sandbox code for {request_id}")

for node in ast.parse(block).body:
    source = ast.get_source_segment(block, node)
    step = plan.get("code")
    if step and step["before"] in source:
        request_id = eval(step["request_id"], namespace) if step.get("request_id") else None
        if step.get("device"):
            # the step the block's comment describes: the device opens check_url (here it is
            # not the number's handset, so silent auth fails over to the SMS)
            requests.get(eval(step["device"], namespace), timeout=10)
        code = code_for(request_id)
        if step.get("placeholder"):
            source = source.replace(step["placeholder"], code)
        else:
            namespace["code"] = code
    exec(compile(source, "<printed>", "exec"), namespace)
for name in plan.get("show", []):
    print(name, "=", eval(name, namespace))
"""


def _python(dev: Dev, block: str, plan: dict[str, Any] | None = None, **env: str) -> str:
    """`block` run by this interpreter: as a script when there is nothing to fill in, else
    through `_REPL` with `plan`."""
    args = ["-"] if plan is None else ["-c", _REPL, json.dumps(plan)]
    out = subprocess.run(
        [sys.executable, *args],
        input=block,
        cwd=dev.cwd,
        env={**dev.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"{block}\n{out.stderr[-3000:]}"
    return out.stdout


# ---- the dev banner ----------------------------------------------------------------------------


def _banner_snippets(banner: str) -> dict[str, str]:
    """Heading line ("...:") -> the indented lines under it, dedented."""
    sections: dict[str, list[str]] = {}
    heading: str | None = None
    for line in banner.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            heading = line
            sections[heading] = []
        elif heading is not None and line.startswith("  "):
            sections[heading].append(line)
        elif not line.strip():
            heading = None
    return {h: textwrap.dedent("\n".join(lines)) for h, lines in sections.items()}


def _credentials(banner: str) -> dict[str, str]:
    found = re.search(r"api key/secret\s+(\S+):(\S+)", banner)
    twilio = re.search(r"Twilio dialect\s+account (AC\w+)\s+auth token (\w+)", banner)
    assert found and twilio, banner
    return {
        "key": found[1],
        "secret": found[2],
        "account": twilio[1],
        "token": twilio[2],
    }


def test_every_banner_snippet_is_covered(dev: Dev) -> None:
    assert list(_banner_snippets(dev.banner)) == BANNER_HEADINGS


def test_the_banner_snippets_run_as_printed(dev: Dev) -> None:
    snippets = _banner_snippets(dev.banner)
    creds = _credentials(dev.banner)

    (start,) = _commands(snippets["Start a verification:"])
    request_id = _json(_bash(dev, start))["request_id"]
    (read,) = _commands(snippets['Read the code the sandbox "sent":'])

    def outbox_code() -> str | None:
        for message in _json(_bash(dev, read)):
            if message.get("request_id") == request_id:
                return str(message["code"])
        return None

    code = wait_until(outbox_code, timeout=20, interval=0.1, what="the sandbox message")
    (check,) = _commands(snippets["Check it:"])
    assert "REQUEST_ID" in check and '"1234"' in check
    checked = _bash(dev, check.replace("REQUEST_ID", request_id).replace('"1234"', f'"{code}"'))
    assert _json(checked)["status"] == "completed"

    create_service, start_twilio = _commands(snippets[BANNER_HEADINGS[3]])
    service = _json(_bash(dev, create_service))
    assert service["sid"].startswith("VA"), service
    assert "VA..." in start_twilio
    verification = _json(_bash(dev, start_twilio.replace("VA...", service["sid"])))
    assert verification["status"] == "pending", verification
    assert _sandbox_code(dev, creds["account"], creds["token"], "+" + NUMBER, verification["sid"])

    (page,) = snippets[BANNER_HEADINGS[4]].split()
    assert "VA..." in page
    demo = requests.get(page.replace("VA...", service["sid"]), timeout=10)
    assert demo.status_code == 200, demo.text[:300]
    assert "navigator.credentials" in demo.text

    # the official Vonage SDK, unmodified, over plain http as the banner shows
    printed = _python(dev, snippets[BANNER_HEADINGS[5]])
    assert re.search(r"request_id='[0-9a-f-]{36}'", printed), printed


# ---- the README ---------------------------------------------------------------------------------


@dataclass
class Block:
    section: str
    lang: str
    text: str


def _readme_blocks(*sections: str) -> list[Block]:
    """The fenced blocks of the named `##`/`###` sections, in order, each with its section."""
    blocks: list[Block] = []
    current = ""
    fence: list[str] | None = None
    lang = ""
    for line in README.read_text().splitlines():
        if fence is None and line.startswith("#"):
            current = line.lstrip("#").strip()
        elif line.startswith("```") and fence is None:
            fence, lang = [], line[3:].strip()
        elif line.startswith("```") and fence is not None:
            if current in sections:
                blocks.append(Block(current, lang, "\n".join(fence) + "\n"))
            fence = None
        elif fence is not None:
            fence.append(line)
    return blocks


README_SECTIONS = (
    "Quick start",
    "Using the API",
    "curl (Basic auth)",
    "Python, official Vonage SDK",
    "Twilio dialect",
)


@pytest.fixture(scope="module")
def tls_serve(dev: Dev) -> Iterator[tuple[str, Path]]:
    """The README's HTTPS for the SDKs: `serve --certfile/--keyfile` on the dev Redis (the CLI
    finds it through ./.verify-dev/redis.url, as it does for a user in that directory)."""
    cert, key = make_tls_cert(dev.cwd.parent)
    port = free_port()
    with (dev.cwd.parent / "serve.log").open("ab") as out:
        proc = subprocess.Popen(
            [
                "verify-orchestrator",
                "serve",
                "--port",
                str(port),
                "--certfile",
                str(cert),
                "--keyfile",
                str(key),
            ],
            cwd=dev.cwd,
            # the settings `dev` gives its own web process, with this one's public URL
            env={
                **dev.env,
                "VERIFY_SANDBOX": "true",
                "VERIFY_WEBHOOK_ALLOW_PRIVATE": "true",
                "VERIFY_PUBLIC_URL": f"https://127.0.0.1:{port}",
                "VERIFY_FRAUD_NUMBER_LIMIT": "100",
                "VERIFY_FRAUD_IP_LIMIT": "1000",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def healthy() -> bool:
        try:
            return requests.get(f"https://127.0.0.1:{port}/health", verify=str(cert), timeout=1).ok
        except requests.RequestException:
            return proc.poll() is not None

    try:
        wait_until(healthy, timeout=30, what="serve over TLS")
        assert proc.poll() is None, (dev.cwd.parent / "serve.log").read_text()[-2000:]
        yield f"127.0.0.1:{port}", cert
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_readme_covers_the_blocks_it_should(dev: Dev) -> None:
    blocks = _readme_blocks(*README_SECTIONS)
    assert [(b.section, b.lang) for b in blocks] == [
        ("Quick start", "bash"),
        ("Using the API", "bash"),
        ("curl (Basic auth)", "bash"),
        ("Python, official Vonage SDK", "python"),
        ("Twilio dialect", "bash"),
        ("Twilio dialect", "python"),
    ]
    quick = blocks[0].text
    # what the test itself started, on the port Quick start names (substituted below)
    assert "verify-orchestrator dev" in quick and "http://127.0.0.1:8080" in quick
    assert f"Verify Orchestrator dev server on {dev.url}" in dev.banner


def _to_dev(dev: Dev, text: str) -> str:
    return text.replace("127.0.0.1:8080", f"127.0.0.1:{dev.port}")


def test_readme_using_the_api_runs_as_printed(dev: Dev, tls_serve: tuple[str, Path]) -> None:
    host, cert = tls_serve
    blocks = _readme_blocks(*README_SECTIONS)
    create_app, curl_block, vonage_sdk, twilio_curl, twilio_sdk = (b.text for b in blocks[1:])

    # "Create an application (prints application_id, api_key, api_secret, ...)". Its status
    # URL is the user's own: shop.example never resolves (RFC 2606) and the CLI refuses a
    # status URL it cannot resolve, so here it is the one the dev banner prints (a private
    # address, which VERIFY_WEBHOOK_ALLOW_PRIVATE allows, as `dev` does for itself)
    (command,) = _commands(create_app)
    assert "https://shop.example/verify-hooks" in command
    status_url = f"{dev.url}/dev/webhooks"
    assert f"status URL {status_url}" in dev.banner
    app = _json(
        _bash(
            dev,
            command.replace("https://shop.example/verify-hooks", status_url),
            VERIFY_WEBHOOK_ALLOW_PRIVATE="true",
        )
    )
    assert (dev.cwd / "shop.key").is_file()
    env = {"API_KEY": app["api_key"], "API_SECRET": app["api_secret"]}

    # curl (Basic auth): one command at a time, $REQUEST_ID from the first answer
    start, read, check, next_workflow, cancel = _commands(_to_dev(dev, curl_block))
    request_id = _json(_bash(dev, start, **env))["request_id"]
    env["REQUEST_ID"] = request_id

    def code() -> str | None:
        for message in _json(_bash(dev, read, **env)):
            if message.get("request_id") == request_id:
                return str(message["code"])
        return None

    found = wait_until(code, timeout=20, interval=0.1, what="the sandbox message")
    assert '"1234"' in check
    assert _json(_bash(dev, check.replace('"1234"', f'"{found}"'), **env))["status"] == "completed"
    for after in (next_workflow, cancel):  # on a completed request: the API's own 4xx answer
        answer = _bash(dev, after, **env)
        assert not answer.strip() or "title" in _json(answer), answer

    # Python, official Vonage SDK, over the README's HTTPS with its certificate trusted
    assert "verify.internal.example:8443" in vonage_sdk
    _python(
        dev,
        vonage_sdk.replace("verify.internal.example:8443", host),
        {
            "names": {"APP_ID": app["application_id"]},
            "code": {
                "before": "check_code(",
                "device": "started.check_url",
                "request_id": "started.request_id",
                "url": dev.url + "/sandbox/v1/messages",
                "to": NUMBER,
                "auth": [app["api_key"], app["api_secret"]],
            },
        },
        REQUESTS_CA_BUNDLE=str(cert),
    )

    # Twilio dialect: `accounts create` for $ACCOUNT_SID / $AUTH_TOKEN, then the curl lines
    account = _json(_bash(dev, "verify-orchestrator accounts create --name shop"))
    env = {"ACCOUNT_SID": account["account_sid"], "AUTH_TOKEN": account["auth_token"]}
    lines = _commands(_to_dev(dev, twilio_curl))
    assert lines[0].startswith("AUTH=")
    prefix = lines[0] + "\n"
    service = _json(_bash(dev, prefix + lines[1], **env))
    env["SERVICE_SID"] = service["sid"]
    started = _json(_bash(dev, prefix + lines[2], **env))
    assert started["status"] == "pending", started
    code_now = _sandbox_code(
        dev, account["account_sid"], account["auth_token"], "+" + NUMBER, started["sid"]
    )
    assert "Code=123456" in lines[3]
    approved = _json(_bash(dev, prefix + lines[3].replace("123456", code_now), **env))
    assert approved["status"] == "approved", approved

    # the Twilio SDK with only its base_url changed
    assert 'base_url = "https://verify.internal.example"' in twilio_sdk
    printed = _python(
        dev,
        twilio_sdk.replace("https://verify.internal.example", f"https://{host}"),
        {
            "names": {
                "ACCOUNT_SID": account["account_sid"],
                "AUTH_TOKEN": account["auth_token"],
            },
            "code": {
                "before": 'code="123456"',
                "placeholder": "123456",
                "request_id": "verification.sid",
                "url": dev.url + "/sandbox/v1/messages",
                "to": "+" + NUMBER,
                "auth": [account["account_sid"], account["auth_token"]],
            },
        },
        REQUESTS_CA_BUNDLE=str(cert),
    )
    assert printed.strip().splitlines()[-1] == "approved"


def test_readme_totp_factor_block_runs_as_printed(dev: Dev, tls_serve: tuple[str, Path]) -> None:
    """The Factors section's TOTP block, after the Twilio block's client (as the README reads:
    `client` and SERVICE_SID are the ones above)."""
    host, cert = tls_serve
    twilio_sdk = _readme_blocks("Twilio dialect")[1].text
    (totp, *_) = [
        b.text
        for b in _readme_blocks("Factors: TOTP, Push, Silent Device Approval and Passkeys")
        if 'factor_type="totp"' in b.text
    ]
    account = _json(_bash(dev, "verify-orchestrator accounts create --name totp"))
    printed = _python(
        dev,
        twilio_sdk.replace("https://verify.internal.example", f"https://{host}")
        + "SERVICE_SID = service.sid\n"
        + totp,
        {
            "names": {"ACCOUNT_SID": account["account_sid"], "AUTH_TOKEN": account["auth_token"]},
            "code": {
                "before": 'code="123456"',
                "placeholder": "123456",
                "request_id": "verification.sid",
                "url": dev.url + "/sandbox/v1/messages",
                "to": "+" + NUMBER,
                "auth": [account["account_sid"], account["auth_token"]],
            },
            "show": ["challenge.status"],
        },
        REQUESTS_CA_BUNDLE=str(cert),
    )
    assert printed.strip().splitlines()[-1] == "challenge.status = approved", printed
