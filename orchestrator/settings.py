"""The one Settings class: defaults from config/defaults.toml, overridden by VERIFY_* variables."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["CONFIG_DIR", "OPERATOR_ENV_PREFIX", "PROVIDER_ENV_PREFIX", "ChannelName", "Settings"]

PROVIDER_ENV_PREFIX = "VERIFY_PROVIDER_"
OPERATOR_ENV_PREFIX = "VERIFY_OPERATOR_"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

ChannelName = Literal["silent_auth", "sms", "whatsapp", "voice", "email"]


class Settings(BaseSettings):
    """Everything an operator can set. Nothing else in the code base reads the environment."""

    model_config = SettingsConfigDict(
        env_prefix="VERIFY_",
        env_nested_delimiter="__",
        toml_file=CONFIG_DIR / "defaults.toml",
        extra="ignore",
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    # ---- high availability (orchestrator/redisconn.py) ----
    # Sentinels as "host:port,host:port": the primary is looked up through them (and followed
    # through a failover); redis_url then gives only the scheme, credentials, db and options
    redis_sentinels: str = ""
    redis_sentinel_master: str | None = Field(default=None, validate_default=True)
    # the Sentinels' own password (`requirepass` in sentinel.conf); the data one is in redis_url
    redis_sentinel_password: SecretStr | None = None
    # a start is answered 202 only once this many replicas have it (WAIT); 0: don't wait
    redis_wait_replicas: int = Field(default=0, ge=0)
    redis_wait_timeout_seconds: float = Field(default=0.5, gt=0, le=60)

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels(cls, value: str) -> str:
        _host_ports(value)  # ValueError: a clear message
        return value

    @field_validator("redis_sentinel_master")
    @classmethod
    def _sentinel_master(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("redis_sentinels") and not value:
            raise ValueError("required when VERIFY_REDIS_SENTINELS is set")
        return value

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """VERIFY_REDIS_SENTINELS as (host, port) pairs."""
        return _host_ports(self.redis_sentinels)

    public_url: str = "http://127.0.0.1:8080"
    sandbox: bool = False
    webhook_allow_private: bool = False
    # The key behind code hashes and in-flight code encryption. Unset: one is generated and kept
    # in Redis, so every web and worker process of one deployment agrees on it.
    secret_key: SecretStr | None = None
    retention_seconds: int = Field(default=86400, ge=60)
    webhook_retry_schedule: list[float] = Field(default_factory=lambda: [5.0, 300.0, 1800.0])
    webhook_retry_jitter: float = Field(default=0.2, ge=0, le=1)
    webhook_timeout_seconds: float = Field(default=15, gt=0)
    # a provider send that takes longer fails the step over to the next channel
    send_timeout_seconds: float = Field(default=10, gt=0)
    max_body_bytes: int = Field(default=65536, ge=1024)
    # when set, GET /metrics answers only `Authorization: Bearer <token>`
    metrics_token: SecretStr | None = None
    # the operations console's operator token (GET /console); unset: only accounts sign in
    console_token: SecretStr | None = None
    # reverse proxies whose X-Forwarded-For names the client (comma-separated IPs or CIDRs)
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)  # ValueError: a clear message
        return value

    worker_poll_delay: float = Field(default=0.25, gt=0)
    worker_max_jobs: int = Field(default=200, ge=1)
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    sandbox_operator_table: Path = CONFIG_DIR / "sandbox_operator.toml"
    # which provider serves each channel; "sandbox" ones only work when `sandbox` is on
    channel_providers: dict[str, str] = Field(
        default_factory=lambda: {
            "sms": "sandbox",
            "whatsapp": "sandbox",
            "voice": "sandbox",
            "email": "sandbox",
            "silent_auth": "sandbox",
        }
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_from: str = "verify@localhost"
    # who delivers Verify Push challenges: "sandbox" (only while `sandbox` is on), "fcm", "apns",
    # or "fcm+apns" (each factor by its notification_platform)
    push_provider: Literal["sandbox", "fcm", "apns", "fcm+apns"] = "sandbox"
    fcm_project_id: str | None = None  # unset: the service account's own project_id
    fcm_service_account_file: Path | None = None  # a Google service-account JSON key
    fcm_base_url: str = "https://fcm.googleapis.com"
    apns_key_file: Path | None = None  # the .p8 token-signing key from Apple
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_topic: str | None = None  # the app's bundle id
    apns_base_url: str = "https://api.push.apple.com"  # development: api.sandbox.push.apple.com
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # ---- fraud guard (orchestrator/security/fraud.py); a limit of 0 turns that check off ----
    fraud_enabled: bool = True
    # starts per destination (per application/service) in a sliding window
    fraud_number_limit: int = Field(default=5, ge=0)
    fraud_number_window_seconds: int = Field(default=600, ge=1)
    # starts per client IP (the address that called the API) in a sliding window
    fraud_ip_limit: int = Field(default=30, ge=0)
    fraud_ip_window_seconds: int = Field(default=600, ge=1)
    # adaptive per-country-calling-code budget: starts per bucket may reach
    # max(floor, multiplier x the busiest bucket's completions over the last `window_buckets`)
    fraud_prefix_floor: int = Field(default=20, ge=0)
    fraud_prefix_multiplier: float = Field(default=3.0, ge=0)
    fraud_prefix_bucket_seconds: int = Field(default=3600, ge=1)
    fraud_prefix_window_buckets: int = Field(default=24, ge=1, le=168)
    # Basic-auth brute force: failed attempts per username / per client IP before a 429
    auth_fail_limit: int = Field(default=10, ge=0)
    auth_fail_ip_limit: int = Field(default=100, ge=0)
    auth_fail_window_seconds: int = Field(default=300, ge=1)
    # the worker's own Prometheus endpoint (the web process serves GET /metrics)
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # ---- delivery (orchestrator/delivery/providers_file.py) ----
    # the TOML file of named providers and per-channel routes; relative to the working directory.
    # Unset: each channel keeps its `channel_providers` provider (sandbox, smtp)
    providers_file: Path | None = None
    # how long a vendor's id stays mapped to the step it delivered (for its delivery receipts)
    receipt_window_seconds: int = Field(default=86400, ge=60)
    # ---- silent auth and SIM swap (orchestrator/operators/) ----
    # the TOML file of CAMARA operators; unset: the sandbox operator in sandbox mode, else none
    operators_file: Path | None = None
    # the SIM-swap gate when the number's operator can't answer: send anyway (true) or refuse
    sim_swap_fail_open: bool = True
    # ---- workflows (orchestrator/workflows/) ----
    # the TOML file of named workflows and their templates; re-read on SIGHUP
    workflows_file: Path | None = None
    # also re-read it when its mtime changes, checked this often (seconds; 0: only on SIGHUP)
    workflows_poll_seconds: float = Field(default=0, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            file_secret_settings,
            TomlConfigSettingsSource(settings_cls),
        )

    def provider_environment(self) -> dict[str, str]:
        """`VERIFY_PROVIDER_<NAME>_<KEY>` variables: providers' secrets kept out of the file."""
        return {k: v for k, v in os.environ.items() if k.startswith(PROVIDER_ENV_PREFIX)}

    def operator_environment(self) -> dict[str, str]:
        """`VERIFY_OPERATOR_<NAME>_<KEY>` variables: operators' secrets kept out of the file."""
        return {k: v for k, v in os.environ.items() if k.startswith(OPERATOR_ENV_PREFIX)}

    def resolve_path(self, path: Path) -> Path:
        """Relative config paths are relative to the repository root, not the working directory."""
        return path if path.is_absolute() else CONFIG_DIR.parent / path


def _host_ports(value: str) -> list[tuple[str, int]]:
    """`host:port,[::1]:port` as pairs; ValueError naming the part that is not one."""
    found: list[tuple[str, int]] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not host:port")
        found.append((host, int(port)))
    return found
