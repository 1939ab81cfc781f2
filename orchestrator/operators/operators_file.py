"""The operators file (`VERIFY_OPERATORS_FILE`): which network verifies which numbers.

```toml
[operators.acme-uk]
kind = "camara"
issuer = "https://oidc.acme.example"             # OIDC discovery, or the explicit URLs below
# authorize_url / token_url / bc_authorize_url = "https://…"
number_verification_url = "https://api.acme.example/number-verification/v2"
sim_swap_url = "https://api.acme.example/sim-swap/v2"
client_id = "verify-orchestrator"
client_auth = "private_key_jwt"                  # | client_secret_basic | client_secret_post
                                                 # | bearer_jwt (Vonage's application JWT)
private_key = "/etc/verify/acme.pem"             # PEM text or a file
key_id = "2026-01"
prefixes = ["447"]                               # E.164 digit prefixes, longest match wins

[operators.acme-uk.scopes]
number_verification = "openid dpv:FraudPreventionAndDetection#number-verification-verify-read"
sim_swap = "dpv:FraudPreventionAndDetection#check-sim-swap"

[operators.sandbox]
kind = "sandbox"                                 # only with VERIFY_SANDBOX=true
```

Secrets may stay out of the file: `VERIFY_OPERATOR_<NAME>_<KEY>` (the name upper-cased, `-` as
`_`) fills or overrides `<key>` of operator `<name>`, e.g. `VERIFY_OPERATOR_ACME_UK_PRIVATE_KEY`.
Without a file the sandbox operator answers in sandbox mode, and nobody in production. In sandbox
mode the sandbox operator stays the default for numbers the file's operators don't cover. Every
fault is one line naming the operator and the key, never a secret's value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from orchestrator.configfile import describe_faults, env_name, read_toml, secrets_from_env
from orchestrator.operators.base import Operator, OperatorUnavailable
from orchestrator.operators.camara import CamaraOperator
from orchestrator.operators.camara_config import CamaraConfig
from orchestrator.operators.sandbox import SandboxOperator
from orchestrator.settings import OPERATOR_ENV_PREFIX, Settings

__all__ = [
    "OPERATOR_ENV_PREFIX",
    "Operators",
    "OperatorsConfig",
    "OperatorsFileError",
    "SandboxOperatorConfig",
    "build_operators",
    "load_operators",
    "operators_config_for",
]

_PREFIX = re.compile(r"[1-9][0-9]{0,14}")


class SandboxOperatorConfig(BaseModel):
    """The built-in sandbox operator (config/sandbox_operator.toml's table); by default it covers
    the table's `covered_prefixes`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sandbox"]
    prefixes: list[str] | None = None

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [str(p).lstrip("+") for p in value]
        for prefix in cleaned:
            if not _PREFIX.fullmatch(prefix):
                raise ValueError(f"{prefix!r} is not a prefix of E.164 digits")
        return cleaned


OperatorConfig = CamaraConfig | SandboxOperatorConfig
KINDS: dict[str, type[BaseModel]] = {"camara": CamaraConfig, "sandbox": SandboxOperatorConfig}


class OperatorsFileError(Exception):
    """The operators file can't be used; the message is one line for the operator."""


@dataclass(frozen=True)
class OperatorsConfig:
    """The named operator configurations in force (in file order), and where they came from.
    `sandbox_default`: the sandbox operator also answers for numbers nobody else covers."""

    operators: dict[str, OperatorConfig]
    source: Path | None
    sandbox_default: bool


def _operator(name: str, table: object, env: dict[str, str], *, source: str) -> OperatorConfig:
    where = f"{source}: operators.{name}"
    if not isinstance(table, dict):
        raise OperatorsFileError(f"{where}: must be a table")
    kind = table.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(KINDS)
        raise OperatorsFileError(f"{where}: unknown kind {kind!r} (known: {known})")
    values: dict[str, Any] = {**table, **{k: v for k, v in env.items() if k != "kind"}}
    try:
        config = model.model_validate(values)
    except ValidationError as exc:
        raise OperatorsFileError(
            f"{where}: " + describe_faults(exc, env_name(OPERATOR_ENV_PREFIX, name))
        ) from None
    assert isinstance(config, CamaraConfig | SandboxOperatorConfig)
    return config


def _check_overlaps(operators: Mapping[str, OperatorConfig], source: str) -> None:
    """Two operators of the file claiming the same prefix for the same API is ambiguous."""
    seen: dict[tuple[str, str], str] = {}
    for name, config in operators.items():
        if not isinstance(config, CamaraConfig):
            continue
        apis = [
            api
            for api, url in (
                ("number verification", config.number_verification_url),
                ("SIM swap", config.sim_swap_url),
            )
            if url is not None
        ]
        for prefix in config.prefixes:
            for api in apis:
                other = seen.setdefault((prefix, api), name)
                if other != name:
                    raise OperatorsFileError(
                        f"{source}: operators.{name}: prefix {prefix!r} is operators.{other}'s "
                        f"too, for {api}"
                    )


def load_operators(
    path: Path | None, environ: Mapping[str, str], *, sandbox: bool
) -> OperatorsConfig:
    """The operators in force. `environ` holds (at least) the VERIFY_OPERATOR_* variables.
    Raises OperatorsFileError with one line for the operator."""
    if path is None:
        return OperatorsConfig({}, None, sandbox_default=sandbox)
    raw = read_toml(path, OperatorsFileError)
    source = str(path)
    unknown = set(raw) - {"operators"}
    if unknown:
        raise OperatorsFileError(f"{source}: unknown table {sorted(unknown)[0]!r}")
    tables = raw.get("operators", {})
    if not isinstance(tables, dict):
        raise OperatorsFileError(f"{source}: operators must be a table of named operators")
    env = secrets_from_env(OPERATOR_ENV_PREFIX, list(tables), environ)
    operators = {
        name: _operator(name, table, env.get(name, {}), source=source)
        for name, table in tables.items()
    }
    for name, config in operators.items():
        if config.kind == "sandbox" and not sandbox:
            raise OperatorsFileError(
                f"{source}: operators.{name}: the sandbox operator answers only with "
                "VERIFY_SANDBOX=true"
            )
    _check_overlaps(operators, source)
    listed = any(c.kind == "sandbox" for c in operators.values())
    return OperatorsConfig(operators, path, sandbox_default=sandbox and not listed)


@dataclass(frozen=True)
class _Entry:
    name: str
    operator: Operator
    prefixes: tuple[str, ...]
    number_verification: bool
    sim_swap: bool


class Operators:
    """The operators by number: the one whose longest prefix covers it (file order breaks a tie,
    the implicit sandbox default comes last)."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = entries

    def for_number(self, msisdn: str, *, sim_swap: bool = False) -> Operator | None:
        """Who verifies `msisdn` (E.164, with or without "+"); with `sim_swap`, who answers SIM
        Swap for it. None: nobody covers it (the 412 pre-check; the SIM-swap gate has nobody
        to ask)."""
        digits = msisdn.lstrip("+")
        best: tuple[int, Operator] | None = None
        for entry in self._entries:
            if not (entry.sim_swap if sim_swap else entry.number_verification):
                continue
            for prefix in entry.prefixes:
                if digits.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), entry.operator)
        return None if best is None else best[1]

    def get(self, name: str) -> Operator | None:
        return next((e.operator for e in self._entries if e.name == name), None)

    def __iter__(self) -> Iterator[Operator]:
        return (e.operator for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    async def start(self) -> dict[str, str]:
        """Warm every operator up (OIDC discovery); the ones that failed, by name, with their
        reason (for a start-up log line; they retry lazily on first use)."""
        failed: dict[str, str] = {}
        for entry in self._entries:
            try:
                await entry.operator.start()
            except OperatorUnavailable as exc:
                failed[entry.name] = exc.reason
        return failed


def build_operators(
    config: OperatorsConfig,
    *,
    http: aiohttp.ClientSession,
    secret: bytes,
    sandbox_operator: SandboxOperator | None,
) -> Operators:
    """The registry for `config`. `http` is the process's client session (its owner closes it);
    `secret` keys the PKCE verifiers; `sandbox_operator` is needed when the sandbox is on."""
    entries: list[_Entry] = []
    for name, item in config.operators.items():
        if isinstance(item, CamaraConfig):
            operator = CamaraOperator(name, item, http, secret)
            entries.append(
                _Entry(
                    name,
                    operator,
                    tuple(item.prefixes),
                    operator.verifies_numbers,
                    operator.checks_sim_swaps,
                )
            )
        else:
            if sandbox_operator is None:
                raise OperatorsFileError(f"operators.{name}: the sandbox operator is not running")
            prefixes = item.prefixes or list(sandbox_operator.table.covered_prefixes)
            entries.append(_Entry(name, sandbox_operator, tuple(prefixes), True, True))
    if config.sandbox_default and sandbox_operator is not None:
        covered = tuple(sandbox_operator.table.covered_prefixes)
        entries.append(_Entry("sandbox", sandbox_operator, covered, True, True))
    return Operators(entries)


def operators_config_for(settings: Settings) -> OperatorsConfig:
    """The operators configuration `settings` name; raises OperatorsFileError (one line)."""
    return load_operators(
        settings.operators_file, settings.operator_environment(), sandbox=settings.sandbox
    )
