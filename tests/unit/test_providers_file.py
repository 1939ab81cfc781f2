"""The providers file: the issue's keys load, routes pick the longest calling code, secrets come
from VERIFY_PROVIDER_* variables, and each fault is one line that names where it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.delivery.providers_file import ProvidersFileError, load_delivery

SID = "AC" + "0123456789abcdef" * 2
EXAMPLE = f"""
[providers.twilio-us]
kind = "twilio"
account_sid = "{SID}"
auth_token = "twilio-secret-token"
from = "+15005550006"
base_url = "http://127.0.0.1:9"

[providers.smsc-eu]
kind = "smpp"
host = "127.0.0.1"
port = 2775
system_id = "acme"
password = "smpp-pw"
source_addr = "ACME"

[providers.meta]
kind = "whatsapp_cloud"
phone_number_id = "106540352242922"
access_token = "meta-access-token"
app_secret = "meta-app-secret"
template = "verify_code"

[providers.sandbox]
kind = "sandbox"

[routes.sms]
default = ["twilio-us", "smsc-eu"]
"44" = ["smsc-eu", "twilio-us"]

[routes.voice]
default = ["twilio-us"]

[routes.whatsapp]
default = ["meta"]
"""

CHANNELS = {"sms": "sandbox", "whatsapp": "sandbox", "voice": "sandbox", "email": "sandbox"}


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(text)
    return path


def _fault(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ProvidersFileError) as caught:
        load_delivery(_file(tmp_path, text), CHANNELS, environ or {}, sandbox=False)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_issue_example_loads_and_routes_by_longest_calling_code(tmp_path: Path) -> None:
    delivery = load_delivery(_file(tmp_path, EXAMPLE), CHANNELS, {}, sandbox=False)
    assert delivery.route("sms", "15551234567") == ("twilio-us", "smsc-eu")
    assert delivery.route("sms", "447700900123") == ("smsc-eu", "twilio-us")
    assert delivery.route("voice", "447700900123") == ("twilio-us",)
    assert delivery.route("whatsapp", "4915112345678") == ("meta",)
    # email has no route in the file: it keeps VERIFY_CHANNEL_PROVIDERS' provider, and that
    # is the sandbox, which does not deliver with the sandbox off
    assert delivery.route("email", "a@example.com") == ()


def test_a_longer_prefix_wins_over_a_shorter_one(tmp_path: Path) -> None:
    text = EXAMPLE.replace(
        '"44" = ["smsc-eu", "twilio-us"]', '"4" = ["twilio-us"]\n"447" = ["smsc-eu"]'
    )
    delivery = load_delivery(_file(tmp_path, text), CHANNELS, {}, sandbox=False)
    assert delivery.route("sms", "447700900123") == ("smsc-eu",)
    assert delivery.route("sms", "4420123456") == ("twilio-us",)


def test_secrets_may_come_from_the_environment(tmp_path: Path) -> None:
    text = EXAMPLE.replace('auth_token = "twilio-secret-token"\n', "")
    environ = {
        "VERIFY_PROVIDER_TWILIO_US_AUTH_TOKEN": "from-env",
        "VERIFY_PROVIDER_SMSC_EU_PASSWORD": "env-pw",
    }
    delivery = load_delivery(_file(tmp_path, text), CHANNELS, environ, sandbox=False)
    twilio = delivery.providers["twilio-us"]
    smpp = delivery.providers["smsc-eu"]
    assert twilio.auth_token.get_secret_value() == "from-env"  # type: ignore[union-attr]
    assert smpp.password.get_secret_value() == "env-pw"  # type: ignore[union-attr]


def test_a_missing_secret_names_the_key_and_its_variable_but_no_secret(tmp_path: Path) -> None:
    text = EXAMPLE.replace('auth_token = "twilio-secret-token"\n', "")
    message = _fault(tmp_path, text)
    assert "providers.twilio-us" in message and "auth_token" in message
    assert "VERIFY_PROVIDER_TWILIO_US_AUTH_TOKEN" in message
    for secret in ("smpp-pw", "meta-access-token", "meta-app-secret"):
        assert secret not in message


def test_an_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    message = _fault(tmp_path, EXAMPLE.replace('kind = "smpp"', 'kind = "smtpp"'))
    assert "providers.smsc-eu" in message and "unknown kind 'smtpp'" in message
    assert "smpp" in message.split("known:")[1]


def test_a_route_naming_a_missing_provider(tmp_path: Path) -> None:
    message = _fault(
        tmp_path, EXAMPLE.replace('default = ["twilio-us"]', 'default = ["twilio-eu"]')
    )
    assert "routes.voice.default" in message and "'twilio-eu'" in message


def test_a_route_to_a_provider_that_does_not_carry_the_channel(tmp_path: Path) -> None:
    message = _fault(tmp_path, EXAMPLE.replace('default = ["meta"]', 'default = ["smsc-eu"]'))
    assert "routes.whatsapp.default" in message and "does not carry whatsapp" in message


def test_a_bad_value_does_not_echo_the_input(tmp_path: Path) -> None:
    message = _fault(
        tmp_path, EXAMPLE.replace(f'account_sid = "{SID}"', 'account_sid = "XX-secretish"')
    )
    assert "account_sid" in message and "XX-secretish" not in message


def test_an_unknown_key_and_bad_toml(tmp_path: Path) -> None:
    assert "unknown key colour" in _fault(
        tmp_path, EXAMPLE + '\n[providers.x]\nkind = "sandbox"\ncolour = 1\n'
    )
    assert "not valid TOML" in _fault(tmp_path, EXAMPLE + "\n[routes.sms\n")
    assert "unknown table" in _fault(tmp_path, EXAMPLE + "\n[extras]\nx = 1\n")


def test_the_sandbox_kind_needs_the_sandbox(tmp_path: Path) -> None:
    text = EXAMPLE.replace('default = ["twilio-us"]', 'default = ["sandbox"]')
    assert "VERIFY_SANDBOX" in _fault(tmp_path, text)
    delivery = load_delivery(_file(tmp_path, text), CHANNELS, {}, sandbox=True)
    assert delivery.route("voice", "15551234567") == ("sandbox",)


def test_without_a_file_every_channel_keeps_its_channel_provider() -> None:
    delivery = load_delivery(None, CHANNELS, {}, sandbox=True)
    assert {c: delivery.route(c, "447700900123") for c in CHANNELS} == {
        c: ("sandbox",) for c in CHANNELS
    }
    delivery = load_delivery(None, {**CHANNELS, "email": "smtp"}, {}, sandbox=False)
    assert delivery.route("email", "a@example.com") == ("smtp",)
    assert delivery.route("sms", "447700900123") == ()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_a_bad_file_with_one_line(tmp_path: Path, command: str) -> None:
    path = _file(tmp_path, EXAMPLE.replace('default = ["twilio-us"]', 'default = ["twilio-eu"]'))
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", command],
        env={"VERIFY_PROVIDERS_FILE": str(path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "routes.voice.default" in lines[0]
    assert "Traceback" not in done.stderr and "twilio-secret-token" not in done.stderr
