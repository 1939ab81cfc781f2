"""The workflows file: `[templates.<name>]` texts and `[workflows.<name>]` chains, checked whole.

Every fault is collected (not just the first), each on one line naming where it is —
`workflows.login.steps[1].channel: …`, `templates.login-text.sms.de: …` — so `workflows check`
can list them all and `serve`/`worker` refuse to start with the same words. The parsed file is
immutable: the registry swaps whole files, and a request holds the one it started with.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from orchestrator.domain.models import Channel
from orchestrator.templates.placeholders import PLACEHOLDERS, placeholders_in, unknown_placeholders

__all__ = [
    "CONDITION_KEYS",
    "NUMBER_TYPES",
    "TEXT_CHANNELS",
    "Template",
    "Workflow",
    "WorkflowStep",
    "WorkflowsFile",
    "WorkflowsFileError",
    "check_workflows",
    "load_workflows",
    "parse_workflows",
]

# the channels whose message text a template gives (email keeps the catalogue's subject and body;
# silent auth sends no text)
TEXT_CHANNELS = ("sms", "whatsapp", "voice")
CONDITION_KEYS = (
    "calling_code",
    "number_type",
    "device_ip_covered",
    "sim_swap_within_hours",
    "local_time",
)
# phonenumbers' PhoneNumberType names, lower case
NUMBER_TYPES = (
    "fixed_line",
    "mobile",
    "fixed_line_or_mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "unknown",
)
# the plain per-channel text inside a per-locale table
DEFAULT_LOCALE = "default"
_STEP_KEYS = ("channel", "from", "timeout", "when")
_WORKFLOW_KEYS = ("template", "steps")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_CALLING_CODE = re.compile(r"^[1-9][0-9]{0,2}$")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_TIMEOUT = (15, 900)  # Vonage's channel_timeout range
_SIM_SWAP_HOURS = (1, 2400)  # CAMARA's maxAge range
_MAX_STEPS = 10
_CHANNELS = tuple(c.value for c in Channel)


class WorkflowsFileError(Exception):
    """The file can't be used; `faults` are its one-line faults, all of them."""

    def __init__(self, source: str, faults: list[str]) -> None:
        super().__init__(f"workflows file {source}: " + "; ".join(faults))
        self.source = source
        self.faults = faults


@dataclass(frozen=True)
class Template:
    """Per channel: texts by locale key (lower case, e.g. "de", "de-de"; `default` for the
    plain per-channel string)."""

    name: str
    texts: MappingProxyType[str, MappingProxyType[str, str]]

    def text_for(self, channel: str, locale: str) -> tuple[str, str] | None:
        """The text for `channel` in `locale` and the key it was found under: the exact locale,
        then its language, then the plain string; None when none of those is written."""
        by_locale = self.texts.get(channel)
        if by_locale is None:
            return None
        wanted = locale.lower()
        for key in (wanted, wanted.split("-")[0], DEFAULT_LOCALE):
            if key in by_locale:
                return by_locale[key], key
        return None


@dataclass(frozen=True)
class WorkflowStep:
    channel: Channel
    sender: str | None = None
    timeout: int | None = None
    # condition key -> its (checked) value; every condition must hold for the step to be kept
    when: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Workflow:
    name: str
    template: str | None
    steps: tuple[WorkflowStep, ...]


@dataclass(frozen=True)
class WorkflowsFile:
    """A checked file (or the empty one when no file is configured)."""

    source: str = ""
    templates: MappingProxyType[str, Template] = field(default_factory=lambda: MappingProxyType({}))
    workflows: MappingProxyType[str, Workflow] = field(default_factory=lambda: MappingProxyType({}))

    def template_of(self, workflow: Workflow) -> Template | None:
        return None if workflow.template is None else self.templates.get(workflow.template)


def load_workflows(path: Path) -> WorkflowsFile:
    """Read and check `path`; raise WorkflowsFileError listing every fault."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkflowsFileError(source, [f"can't be read ({exc.strerror or exc})"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WorkflowsFileError(source, [f"not valid TOML ({exc})"]) from None
    return parse_workflows(data, source)


def check_workflows(path: Path) -> list[str]:
    """Every fault of the file at `path`; empty when it is usable."""
    try:
        load_workflows(path)
    except WorkflowsFileError as exc:
        return exc.faults
    return []


def parse_workflows(data: dict[str, Any], source: str = "<memory>") -> WorkflowsFile:
    """Check parsed TOML; raise WorkflowsFileError listing every fault."""
    faults: list[str] = []
    for key in data:
        if key not in ("templates", "workflows"):
            faults.append(f"{key}: unknown section (the file has [templates.*] and [workflows.*])")
    templates = _templates(data.get("templates", {}), faults)
    workflows = _workflows(data.get("workflows", {}), templates, faults)
    if faults:
        raise WorkflowsFileError(source, faults)
    return WorkflowsFile(source, MappingProxyType(templates), MappingProxyType(workflows))


# ---- templates ----------------------------------------------------------------------------------


def _templates(raw: object, faults: list[str]) -> dict[str, Template]:
    if not isinstance(raw, dict):
        faults.append("templates: must be a table of [templates.<name>]")
        return {}
    found: dict[str, Template] = {}
    for name, body in raw.items():
        where = f"templates.{name}"
        if not _NAME.match(name):
            faults.append(f"{where}: a name is letters, digits, '-', '_' or '.' (up to 64)")
        if not isinstance(body, dict):
            faults.append(f"{where}: must be a table of per-channel texts")
            continue
        texts: dict[str, MappingProxyType[str, str]] = {}
        for channel, value in body.items():
            at = f"{where}.{channel}"
            if channel not in TEXT_CHANNELS:
                hint = " (email keeps the built-in subject and body)" if channel == "email" else ""
                faults.append(
                    f"{at}: unknown channel; texts are for {', '.join(TEXT_CHANNELS)}{hint}"
                )
                continue
            # a faulty text still counts as written: its own fault is enough (no "has no sms
            # text" besides it); the file is refused anyway
            if isinstance(value, str):
                _check_text(value, at, faults)
                texts[channel] = MappingProxyType({DEFAULT_LOCALE: value})
                continue
            if not isinstance(value, dict) or not value:
                faults.append(f"{at}: must be a text, or a table of texts by locale")
                continue
            by_locale: dict[str, str] = {}
            for locale, text in value.items():
                lat = f"{at}.{locale}"
                key = locale.lower()
                if key != DEFAULT_LOCALE and not _LOCALE.match(key):
                    faults.append(f"{lat}: not a locale (e.g. en, de, pt-br, or default)")
                elif not isinstance(text, str):
                    faults.append(f"{lat}: must be a text")
                elif key in by_locale:
                    faults.append(f"{lat}: locale given twice")
                else:
                    _check_text(text, lat, faults)
                    by_locale[key] = text
            texts[channel] = MappingProxyType(by_locale)
        found[name] = Template(name, MappingProxyType(texts))
    return found


def _check_text(text: str, where: str, faults: list[str]) -> None:
    if not text.strip():
        faults.append(f"{where}: empty text")
        return
    known = ", ".join("${" + p + "}" for p in PLACEHOLDERS)
    for name in unknown_placeholders(text):
        faults.append(f"{where}: unknown placeholder ${{{name}}} (known: {known})")
    if "code" not in placeholders_in(text):
        faults.append(f"{where}: the text has no ${{code}}")


# ---- workflows ----------------------------------------------------------------------------------


def _workflows(
    raw: object, templates: dict[str, Template], faults: list[str]
) -> dict[str, Workflow]:
    if not isinstance(raw, dict):
        faults.append("workflows: must be a table of [workflows.<name>]")
        return {}
    found: dict[str, Workflow] = {}
    for name, body in raw.items():
        where = f"workflows.{name}"
        if not _NAME.match(name):
            faults.append(f"{where}: a name is letters, digits, '-', '_' or '.' (up to 64)")
        if not isinstance(body, dict):
            faults.append(f"{where}: must be a table with template and steps")
            continue
        for key in body:
            if key not in _WORKFLOW_KEYS:
                faults.append(f"{where}.{key}: unknown key (one of {', '.join(_WORKFLOW_KEYS)})")
        template_name = body.get("template")
        template: Template | None = None
        if template_name is not None:
            if not isinstance(template_name, str):
                faults.append(f"{where}.template: must be a template's name")
                template_name = None
            elif template_name not in templates:
                faults.append(f"{where}.template: no template named {template_name!r}")
            else:
                template = templates[template_name]
        raw_steps = body.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            faults.append(f"{where}.steps: required, a list of one or more steps")
            continue
        if len(raw_steps) > _MAX_STEPS:
            faults.append(f"{where}.steps: at most {_MAX_STEPS} steps")
        steps: list[WorkflowStep] = []
        for i, raw_step in enumerate(raw_steps):
            step = _step(f"{where}.steps[{i}]", i, raw_step, template, faults)
            if step is not None:
                steps.append(step)
        found[name] = Workflow(name, template_name, tuple(steps))
    return found


def _step(
    where: str, index: int, raw: object, template: Template | None, faults: list[str]
) -> WorkflowStep | None:
    if not isinstance(raw, dict):
        faults.append(f'{where}: must be a table such as {{ channel = "sms" }}')
        return None
    for key in raw:
        if key not in _STEP_KEYS:
            faults.append(f"{where}.{key}: unknown key (one of {', '.join(_STEP_KEYS)})")
    value = raw.get("channel")
    if value not in _CHANNELS:
        shown = "missing" if value is None else f"unknown channel {value!r}"
        faults.append(f"{where}.channel: {shown} (one of {', '.join(_CHANNELS)})")
        return None
    channel = Channel(value)
    if channel is Channel.SILENT_AUTH and index != 0:
        faults.append(f"{where}.channel: silent_auth must be the first step")
    if template is not None and channel.value in TEXT_CHANNELS:
        if channel.value not in template.texts:
            faults.append(
                f"{where}.channel: template {template.name!r} has no {channel.value} text"
            )
    sender = raw.get("from")
    if sender is not None:
        if channel is Channel.SILENT_AUTH:
            faults.append(f"{where}.from: silent_auth sends nothing, so it has no sender")
        elif not isinstance(sender, str) or not 1 <= len(sender) <= 254:
            faults.append(f"{where}.from: must be a sender (text)")
    timeout = raw.get("timeout")
    if timeout is not None:
        if channel is Channel.SILENT_AUTH:
            faults.append(f"{where}.timeout: silent_auth's timeout is fixed")
        elif not _int_in(timeout, _TIMEOUT):
            faults.append(f"{where}.timeout: seconds, a whole number from 15 to 900")
    when = _when(f"{where}.when", raw.get("when", {}), faults)
    return WorkflowStep(
        channel,
        sender if isinstance(sender, str) else None,
        timeout if isinstance(timeout, int) else None,
        MappingProxyType(when),
    )


def _int_in(value: object, bounds: tuple[int, int]) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]
    )


def _when(where: str, raw: object, faults: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        faults.append(f"{where}: must be a table of conditions")
        return {}
    when: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{where}.{key}"
        if key not in CONDITION_KEYS:
            faults.append(f"{at}: unknown condition (one of {', '.join(CONDITION_KEYS)})")
        elif key == "calling_code":
            codes = [str(v) for v in value] if isinstance(value, list) else None
            if not codes or any(isinstance(v, bool) for v in value):
                faults.append(f'{at}: a list of calling codes, e.g. ["44", "49"]')
            elif bad := [c for c in codes if not _CALLING_CODE.match(c)]:
                faults.append(f"{at}: not a calling code: {', '.join(bad)}")
            else:
                when[key] = tuple(codes)
        elif key == "number_type":
            types = [value] if isinstance(value, str) else value
            if (
                not isinstance(types, list)
                or not types
                or not all(isinstance(t, str) for t in types)
            ):
                faults.append(f'{at}: a number type or a list of them, e.g. "mobile"')
            elif bad := [t for t in types if t not in NUMBER_TYPES]:
                faults.append(
                    f"{at}: unknown number type {bad[0]!r} (one of {', '.join(NUMBER_TYPES)})"
                )
            else:
                when[key] = tuple(types)
        elif key == "device_ip_covered":
            if not isinstance(value, bool):
                faults.append(f"{at}: true or false")
            else:
                when[key] = value
        elif key == "sim_swap_within_hours":
            if not _int_in(value, _SIM_SWAP_HOURS):
                faults.append(f"{at}: hours, a whole number from 1 to 2400")
            else:
                when[key] = value
        else:  # local_time
            between = value.get("between") if isinstance(value, dict) else None
            if (
                not isinstance(value, dict)
                or set(value) != {"between"}
                or not isinstance(between, list)
                or len(between) != 2
                or not all(isinstance(t, str) and _CLOCK.match(t) for t in between)
            ):
                faults.append(f'{at}: {{ between = ["HH:MM", "HH:MM"] }} (24-hour clock)')
            else:
                when[key] = (between[0], between[1])
    return when
