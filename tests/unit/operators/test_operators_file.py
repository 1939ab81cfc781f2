"""The operators file: the issue's keys load, the longest prefix picks the operator, secrets
come from VERIFY_OPERATOR_* variables, the sandbox stays the default in sandbox mode, and each
fault is one line that names where it is without echoing a secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orchestrator.operators.camara import CamaraOperator
from orchestrator.operators.camara_config import CamaraConfig
from orchestrator.operators.operators_file import (
    OperatorsFileError,
    build_operators,
    load_operators,
)
from orchestrator.operators.sandbox import OperatorTable, SandboxOperator

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
SECRET_VALUE = "very-secret-client-secret"

EXAMPLE = """
[operators.acme-uk]
kind = "camara"
name = "Acme Mobile"
issuer = "https://oidc.acme.example"
number_verification_url = "https://api.acme.example/number-verification/v2/"
sim_swap_url = "https://api.acme.example/sim-swap/v2"
client_id = "verify-orchestrator"
key_id = "2026-01"
prefixes = ["44", "+447700"]

[operators.acme-uk.scopes]
sim_swap = "openid dpv:FraudPreventionAndDetection#check-sim-swap"

[operators.acme-uk-mvno]
kind = "camara"
authorize_url = "https://mvno.example/oauth2/auth"
token_url = "https://mvno.example/oauth2/token"
number_verification_url = "https://mvno.example/camara/number-verification/v031"
client_id = "vo"
client_auth = "client_secret_basic"
prefixes = ["447700900"]
hashed_phone_number = true
timeout_seconds = 4

[operators.vonage]
kind = "camara"
authorize_url = "https://oidc.idp.vonage.com/oauth2/auth"
token_url = "https://api-eu.vonage.com/oauth2/token"
bc_authorize_url = "https://api-eu.vonage.com/oauth2/bc-authorize"
sim_swap_url = "https://api-eu.vonage.com/camara/sim-swap/v040"
client_id = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
client_auth = "bearer_jwt"
prefixes = ["49"]
sim_swap_phone_number = "always"
"""

ENV = {
    "VERIFY_OPERATOR_ACME_UK_PRIVATE_KEY": PEM,
    "VERIFY_OPERATOR_ACME_UK_MVNO_CLIENT_SECRET": SECRET_VALUE,
    "VERIFY_OPERATOR_VONAGE_PRIVATE_KEY": PEM.replace("\n", "\\n"),
    "UNRELATED": "x",
}


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "operators.toml"
    path.write_text(text)
    return path


def _fault(
    tmp_path: Path, text: str, environ: dict[str, str] | None = None, *, sandbox: bool = False
) -> str:
    with pytest.raises(OperatorsFileError) as caught:
        load_operators(_file(tmp_path, text), environ or {}, sandbox=sandbox)
    message = str(caught.value)
    assert "\n" not in message
    assert SECRET_VALUE not in message and "PRIVATE KEY" not in message
    return message


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _sandbox() -> SandboxOperator:
    table = OperatorTable("Sandbox Mobile", ("447700900", "990"), ())
    return SandboxOperator(None, table, "http://127.0.0.1:8080")  # type: ignore[arg-type]


def test_the_example_loads_with_secrets_from_the_environment(tmp_path: Path) -> None:
    config = load_operators(_file(tmp_path, EXAMPLE), ENV, sandbox=False)
    assert list(config.operators) == ["acme-uk", "acme-uk-mvno", "vonage"]
    acme = config.operators["acme-uk"]
    assert isinstance(acme, CamaraConfig)
    assert acme.client_auth == "private_key_jwt"
    assert acme.prefixes == ["44", "447700"]
    assert acme.number_verification_url == "https://api.acme.example/number-verification/v2"
    assert acme.scopes.number_verification.startswith("openid dpv:")
    assert acme.scopes.sim_swap == "openid dpv:FraudPreventionAndDetection#check-sim-swap"
    mvno = config.operators["acme-uk-mvno"]
    assert isinstance(mvno, CamaraConfig) and mvno.client_secret is not None
    assert mvno.client_secret.get_secret_value() == SECRET_VALUE  # the longer name's key
    assert mvno.hashed_phone_number and mvno.timeout_seconds == 4
    vonage = config.operators["vonage"]
    assert isinstance(vonage, CamaraConfig) and vonage.private_key is not None
    assert "\n" in vonage.private_key.get_secret_value()  # escaped newlines restored
    assert not config.sandbox_default


def test_a_private_key_file_path(tmp_path: Path) -> None:
    key = tmp_path / "acme.pem"
    key.write_text(PEM)
    text = EXAMPLE.replace('key_id = "2026-01"', f'key_id = "2026-01"\nprivate_key = "{key}"')
    env = {k: v for k, v in ENV.items() if "ACME_UK_PRIVATE" not in k}
    config = load_operators(_file(tmp_path, text), env, sandbox=False)
    acme = config.operators["acme-uk"]
    assert isinstance(acme, CamaraConfig) and acme.private_key is not None
    assert acme.private_key.get_secret_value().startswith("-----BEGIN PRIVATE KEY")


async def test_the_longest_prefix_picks_the_operator(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = load_operators(_file(tmp_path, EXAMPLE), ENV, sandbox=False)
    operators = build_operators(config, http=http, secret=b"k" * 32, sandbox_operator=None)
    assert len(operators) == 3
    mvno, acme = operators.get("acme-uk-mvno"), operators.get("acme-uk")
    assert operators.for_number("447700900123") is mvno
    assert operators.for_number("+447700123456") is acme
    assert operators.for_number("441632960000") is acme
    assert operators.for_number("15551234567") is None
    # the MVNO has no SIM Swap API: its numbers go to the operator that has one
    assert operators.for_number("447700900123", sim_swap=True) is acme
    # Vonage here answers SIM swap only
    assert operators.for_number("4915112345678") is None
    assert operators.for_number("4915112345678", sim_swap=True) is operators.get("vonage")
    assert isinstance(acme, CamaraOperator) and acme.name == "Acme Mobile"
    assert isinstance(mvno, CamaraOperator) and mvno.name == "acme-uk-mvno"


async def test_without_a_file_sandbox_mode_keeps_the_sandbox_operator(
    http: aiohttp.ClientSession,
) -> None:
    sandbox = _sandbox()
    config = load_operators(None, {}, sandbox=True)
    operators = build_operators(config, http=http, secret=b"k", sandbox_operator=sandbox)
    assert operators.for_number("447700900001") is sandbox
    assert operators.for_number("990123456780", sim_swap=True) is sandbox
    assert operators.for_number("15551234567") is None


async def test_without_a_file_production_has_no_operator(http: aiohttp.ClientSession) -> None:
    config = load_operators(None, {}, sandbox=False)
    operators = build_operators(config, http=http, secret=b"k", sandbox_operator=None)
    assert operators.for_number("447700900001") is None
    assert len(operators) == 0


async def test_in_sandbox_mode_the_sandbox_stays_the_default(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    sandbox = _sandbox()
    text = EXAMPLE.replace('prefixes = ["447700900"]', 'prefixes = ["4477009001"]')
    config = load_operators(_file(tmp_path, text), ENV, sandbox=True)
    operators = build_operators(config, http=http, secret=b"k", sandbox_operator=sandbox)
    assert operators.for_number("447700900555") is sandbox  # its prefix is the longer one
    assert operators.for_number("4477009001234") is operators.get("acme-uk-mvno")
    assert operators.for_number("990123456780") is sandbox


async def test_a_listed_sandbox_operator_with_its_own_prefixes(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    sandbox = _sandbox()
    text = '[operators.sandbox]\nkind = "sandbox"\nprefixes = ["1555"]\n'
    config = load_operators(_file(tmp_path, text), {}, sandbox=True)
    assert not config.sandbox_default
    operators = build_operators(config, http=http, secret=b"k", sandbox_operator=sandbox)
    assert operators.for_number("15551234567") is sandbox
    assert operators.for_number("447700900001") is None


def test_the_sandbox_kind_needs_sandbox_mode(tmp_path: Path) -> None:
    message = _fault(tmp_path, '[operators.play]\nkind = "sandbox"\n')
    assert message.endswith(
        "operators.play: the sandbox operator answers only with VERIFY_SANDBOX=true"
    )


MINIMAL = """
[operators.op]
kind = "camara"
token_url = "https://op.example/token"
authorize_url = "https://op.example/authorize"
number_verification_url = "https://op.example/nv/v2"
client_id = "c"
client_auth = "client_secret_post"
client_secret = "{secret}"
prefixes = ["33"]
""".replace("{secret}", SECRET_VALUE)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('kind = "camara"', 'kind = "carrier"'),
            "operators.op: unknown kind 'carrier' (known: camara, sandbox)",
        ),
        (
            ('client_id = "c"\n', ""),
            "operators.op: missing client_id (in the file or VERIFY_OPERATOR_OP_CLIENT_ID)",
        ),
        (
            (f'client_secret = "{SECRET_VALUE}"\n', ""),
            "operators.op: missing client_secret (in the file or VERIFY_OPERATOR_OP_CLIENT_SECRET)",
        ),
        (
            ('prefixes = ["33"]', 'prefixes = ["33x"]'),
            "operators.op: prefixes: '33x' is not a prefix of E.164 digits",
        ),
        (
            ('prefixes = ["33"]', "prefixes = []"),
            "operators.op: prefixes: List should have at least 1 item after validation, not 0",
        ),
        (
            ('client_id = "c"', 'client_id = "c"\ncolour = "red"'),
            "operators.op: unknown key colour",
        ),
        (
            ("https://op.example/token", "http://op.example/token"),
            "operators.op: token_url: must be an https URL (or http to localhost)",
        ),
        (
            ('authorize_url = "https://op.example/authorize"\n', ""),
            "operators.op: number verification needs issuer (discovery) or authorize_url",
        ),
        (
            ('number_verification_url = "https://op.example/nv/v2"\n', ""),
            "operators.op: give number_verification_url, sim_swap_url or both",
        ),
        (
            ('client_auth = "client_secret_post"', 'client_auth = "mtls"'),
            "operators.op: client_auth: Input should be",
        ),
        (
            ('client_id = "c"', 'client_id = "c"\nca_file = "/nonexistent.pem"'),
            "operators.op: ca_file: is not a readable PEM certificate bundle",
        ),
        (
            ('client_id = "c"', 'client_id = "c"\ntimeout_seconds = 0'),
            "operators.op: timeout_seconds: Input should be greater than 0",
        ),
    ],
)
def test_faults_are_one_line_naming_the_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = MINIMAL.replace(*change)
    assert text != MINIMAL
    message = _fault(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'operators.toml'}: ")
    assert expected in message


def test_a_private_key_that_is_not_one(tmp_path: Path) -> None:
    text = MINIMAL.replace('client_auth = "client_secret_post"', 'client_auth = "private_key_jwt"')
    message = _fault(tmp_path, text, {"VERIFY_OPERATOR_OP_PRIVATE_KEY": "-----BEGIN junk"})
    assert message.endswith(
        "operators.op: private_key: is not an unencrypted RSA or EC PEM private key"
    )
    message = _fault(tmp_path, text)
    assert "missing private_key (in the file or VERIFY_OPERATOR_OP_PRIVATE_KEY)" in message


def test_bearer_jwt_wants_an_rsa_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    text = MINIMAL.replace('client_auth = "client_secret_post"', 'client_auth = "bearer_jwt"')
    message = _fault(tmp_path, text, {"VERIFY_OPERATOR_OP_PRIVATE_KEY": pem})
    assert "private_key: bearer_jwt needs the application's RSA key (RS256)" in message


def test_two_operators_claiming_one_prefix(tmp_path: Path) -> None:
    text = MINIMAL + MINIMAL.replace("[operators.op]", "[operators.other]")
    message = _fault(tmp_path, text)
    assert message.endswith(
        "operators.other: prefix '33' is operators.op's too, for number verification"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[operators\n", "not valid TOML"),
        ("[providers.x]\nkind = 'twilio'\n", "unknown table 'providers'"),
        ("operators = 3\n", "operators must be a table of named operators"),
        ("[operators]\nop = 3\n", "operators.op: must be a table"),
    ],
)
def test_file_level_faults(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _fault(tmp_path, text)


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(OperatorsFileError) as caught:
        load_operators(tmp_path / "missing.toml", {}, sandbox=False)
    assert "can't read it" in str(caught.value)


def test_a_secret_value_is_never_echoed(tmp_path: Path) -> None:
    """A secret put where a number belongs: the message says what is wrong, not the value."""
    text = MINIMAL.replace('client_id = "c"', 'client_id = "c"\ntimeout_seconds = "x"')
    message = _fault(tmp_path, text, {"VERIFY_OPERATOR_OP_TIMEOUT_SECONDS": SECRET_VALUE})
    assert "timeout_seconds" in message
