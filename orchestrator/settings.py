"""The one Settings class: defaults from config/defaults.toml, overridden by VERIFY_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["CONFIG_DIR", "ChannelName", "Settings"]

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
    max_body_bytes: int = Field(default=65536, ge=1024)
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

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

    def resolve_path(self, path: Path) -> Path:
        """Relative config paths are relative to the repository root, not the working directory."""
        return path if path.is_absolute() else CONFIG_DIR.parent / path
