"""The providers file (`VERIFY_PROVIDERS_FILE`): named providers, and routes per channel.

```toml
[providers.twilio-us]
kind = "twilio"
...
[routes.sms]
default = ["twilio-us", "smsc-eu"]   # tried in order within one step
"44" = ["smsc-eu", "twilio-us"]      # by E.164 calling-code prefix, longest match wins
```

Secrets may stay out of the file: `VERIFY_PROVIDER_<NAME>_<KEY>` (the name upper-cased, `-` as
`_`) fills or overrides `<key>` of provider `<name>`, e.g. `VERIFY_PROVIDER_TWILIO_US_AUTH_TOKEN`.
A channel the file gives no route keeps the provider `channel_providers` names for it (the
sandbox by default, which only delivers while the sandbox is on). Every fault is one line,
naming the provider or route and the key, never a secret's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.configfile import describe_faults, env_name, read_toml, secrets_from_env
from orchestrator.delivery.smpp import SmppConfig
from orchestrator.delivery.twilio import TwilioConfig
from orchestrator.delivery.vonage import VonageConfig
from orchestrator.delivery.whatsapp_cloud import WhatsAppCloudConfig
from orchestrator.settings import PROVIDER_ENV_PREFIX, Settings

__all__ = [
    "ROUTED_CHANNELS",
    "CircuitConfig",
    "Delivery",
    "ProvidersFileError",
    "SandboxConfig",
    "SmtpConfig",
    "delivery_for",
    "load_delivery",
]

ROUTED_CHANNELS = ("sms", "whatsapp", "voice", "email")
_ROUTE_KEY = re.compile(r"default|[1-9][0-9]{0,5}")


class SandboxConfig(BaseModel):
    """The sandbox outbox: every channel, and only while VERIFY_SANDBOX is on."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sandbox"]
    channels: list[str] = Field(default_factory=lambda: list(ROUTED_CHANNELS))


class SmtpConfig(BaseModel):
    """E-mail through the SMTP server the VERIFY_SMTP_* settings name."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["smtp"]
    channels: list[str] = Field(default_factory=lambda: ["email"])


ProviderConfig = (
    TwilioConfig | VonageConfig | WhatsAppCloudConfig | SmppConfig | SandboxConfig | SmtpConfig
)
KINDS: dict[str, type[BaseModel]] = {
    "twilio": TwilioConfig,
    "vonage": VonageConfig,
    "whatsapp_cloud": WhatsAppCloudConfig,
    "smpp": SmppConfig,
    "sandbox": SandboxConfig,
    "smtp": SmtpConfig,
}


class CircuitConfig(BaseModel):
    """A provider that failed `failures` sends in a row is skipped for `cooldown_seconds`."""

    model_config = ConfigDict(extra="forbid")
    failures: int = Field(default=5, ge=1)
    cooldown_seconds: float = Field(default=30, gt=0)


class ProvidersFileError(Exception):
    """The providers file can't be used; the message is one line for the operator."""


@dataclass(frozen=True)
class Delivery:
    """Named provider configurations and, per channel, the providers to try in order."""

    providers: dict[str, ProviderConfig]
    routes: dict[str, dict[str, tuple[str, ...]]]
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    source: Path | None = None

    def route(self, channel: str, to: str) -> tuple[str, ...]:
        """The providers for `channel` to `to` (E.164 digits): the longest calling-code prefix
        listed for the channel, else its default; () when the channel has no provider."""
        table = self.routes.get(channel, {})
        digits = to.lstrip("+")
        best = ""
        for key in table:
            if key != "default" and digits.startswith(key) and len(key) > len(best):
                best = key
        return table.get(best or "default", ())

    def channels(self, name: str) -> list[str]:
        return list(self.providers[name].channels)


def _kind_fault(where: str, kind: object) -> ProvidersFileError:
    known = ", ".join(KINDS)
    return ProvidersFileError(f"{where}: unknown kind {kind!r} (known: {known})")


def _provider(name: str, table: object, env: dict[str, str], *, source: str) -> ProviderConfig:
    where = f"{source}: providers.{name}"
    if not isinstance(table, dict):
        raise ProvidersFileError(f"{where}: must be a table")
    kind = table.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise _kind_fault(where, kind)
    values: dict[str, Any] = {**table, **{k: v for k, v in env.items() if k != "kind"}}
    try:
        config = model.model_validate(values)
    except ValidationError as exc:
        raise ProvidersFileError(
            f"{where}: " + describe_faults(exc, env_name(PROVIDER_ENV_PREFIX, name))
        ) from None
    assert isinstance(config, ProviderConfig)
    return config


def _routes(
    raw: object, providers: Mapping[str, ProviderConfig], *, source: str
) -> dict[str, dict[str, tuple[str, ...]]]:
    if not isinstance(raw, dict):
        raise ProvidersFileError(f"{source}: routes must be a table of channels")
    routes: dict[str, dict[str, tuple[str, ...]]] = {}
    for channel, table in raw.items():
        where = f"{source}: routes.{channel}"
        if channel not in ROUTED_CHANNELS:
            known = ", ".join(ROUTED_CHANNELS)
            raise ProvidersFileError(f"{where}: unknown channel (routed channels: {known})")
        if not isinstance(table, dict):
            raise ProvidersFileError(f"{where}: must be a table of calling codes")
        routes[channel] = {}
        for key, names in table.items():
            if not _ROUTE_KEY.fullmatch(key):
                raise ProvidersFileError(
                    f'{where}: key {key!r} is neither "default" nor a calling-code prefix'
                )
            if (
                not isinstance(names, list)
                or not names
                or not all(isinstance(n, str) for n in names)
            ):
                raise ProvidersFileError(f"{where}.{key}: must be a list of provider names")
            for name in names:
                if name not in providers:
                    raise ProvidersFileError(
                        f"{where}.{key}: names provider {name!r}, which is not under [providers]"
                    )
                if channel not in providers[name].channels:
                    kind = providers[name].kind
                    raise ProvidersFileError(
                        f"{where}.{key}: provider {name!r} ({kind}) does not carry {channel}"
                    )
            if len(set(names)) != len(names):
                raise ProvidersFileError(f"{where}.{key}: names a provider twice")
            routes[channel][key] = tuple(names)
    return routes


def load_delivery(
    path: Path | None,
    channel_providers: Mapping[str, str],
    environ: Mapping[str, str],
    *,
    sandbox: bool,
) -> Delivery:
    """The providers and routes in force: the file's, plus `channel_providers` for channels the
    file does not route. Raises ProvidersFileError with one line for the operator."""
    raw: dict[str, Any] = read_toml(path, ProvidersFileError) if path is not None else {}
    source = str(path) if path is not None else "VERIFY_CHANNEL_PROVIDERS"
    unknown = set(raw) - {"providers", "routes", "circuit"}
    if unknown:
        raise ProvidersFileError(f"{source}: unknown table {sorted(unknown)[0]!r}")
    tables = raw.get("providers", {})
    if not isinstance(tables, dict):
        raise ProvidersFileError(f"{source}: providers must be a table of named providers")
    env = secrets_from_env(PROVIDER_ENV_PREFIX, list(tables), environ)
    providers: dict[str, ProviderConfig] = {
        name: _provider(name, table, env.get(name, {}), source=source)
        for name, table in tables.items()
    }
    routes = _routes(raw.get("routes", {}), providers, source=source)
    for name, config in providers.items():
        routed = any(name in names for table in routes.values() for names in table.values())
        if config.kind == "sandbox" and routed and not sandbox:
            raise ProvidersFileError(
                f"{source}: providers.{name}: the sandbox provider delivers only with "
                "VERIFY_SANDBOX=true"
            )
    # channels without a route keep their VERIFY_CHANNEL_PROVIDERS provider (sandbox / smtp)
    for channel in ROUTED_CHANNELS:
        if channel in routes:
            continue
        given = channel_providers.get(channel)
        if given is None or (given == "sandbox" and not sandbox):
            continue
        name = given
        if name not in providers:
            if name not in ("sandbox", "smtp"):
                raise ProvidersFileError(
                    f"VERIFY_CHANNEL_PROVIDERS: {channel} names {name!r}, which is neither "
                    "sandbox, smtp nor a provider of the providers file"
                )
            providers[name] = KINDS[name].model_validate({"kind": name})  # type: ignore[assignment]
        if channel not in providers[name].channels:
            raise ProvidersFileError(
                f"VERIFY_CHANNEL_PROVIDERS: {name!r} ({providers[name].kind}) does not carry "
                f"{channel}"
            )
        routes[channel] = {"default": (name,)}
    try:
        circuit = CircuitConfig.model_validate(raw.get("circuit", {}))
    except ValidationError as exc:
        raise ProvidersFileError(f"{source}: circuit: " + describe_faults(exc, "")) from None
    return Delivery(providers, routes, circuit, path)


def delivery_for(settings: Settings) -> Delivery:
    """The delivery configuration `settings` name; raises ProvidersFileError (one line)."""
    channel_providers = {c: n for c, n in settings.channel_providers.items() if c != "silent_auth"}
    return load_delivery(
        settings.providers_file,
        channel_providers,
        settings.provider_environment(),
        sandbox=settings.sandbox,
    )
