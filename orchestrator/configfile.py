"""What the operator-written TOML files share (providers, operators): reading them, secrets from
`VERIFY_<KIND>_<NAME>_<KEY>` variables, and one-line faults that never echo a value."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

__all__ = ["describe_faults", "env_name", "read_toml", "secrets_from_env"]


def env_name(prefix: str, name: str) -> str:
    """The variable prefix of table `name`: upper-cased, anything but letters and digits as `_`."""
    return prefix + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_"


def secrets_from_env(
    prefix: str, names: list[str], environ: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """`<prefix><NAME>_<KEY>` values by table name; the longest matching name wins, so `twilio`
    and `twilio-us` don't take each other's keys."""
    prefixes = sorted(((env_name(prefix, n), n) for n in names), key=lambda p: -len(p[0]))
    found: dict[str, dict[str, str]] = {}
    for var, value in environ.items():
        for start, name in prefixes:
            if var.startswith(start) and len(var) > len(start):
                found.setdefault(name, {})[var[len(start) :].lower()] = value
                break
    return found


def describe_faults(exc: ValidationError, env_hint: str) -> str:
    """The validation faults, `; `-joined: the key and pydantic's message only (its input echo
    could be a secret); a missing key names the variable that may hold it."""
    faults = []
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            faults.append(f"missing {key} (in the file or {env_hint}{key.upper()})")
        elif error["type"] == "extra_forbidden":
            faults.append(f"unknown key {key}")
        elif key:
            faults.append(f"{key}: {message}")
        else:
            faults.append(message)
    return "; ".join(faults)


def read_toml(path: Path, error: type[Exception]) -> dict[str, Any]:
    """The file's tables; `error` with one line when it can't be read or isn't TOML."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise error(f"{path}: can't read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None
