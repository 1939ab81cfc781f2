"""A named workflow for one number: which steps are kept, which skipped, and why.

Both a start (Vonage `workflow_name`, Twilio `Channel=auto` on a service with a workflow) and
`workflows simulate` go through `plan`, so what simulate prints is what a start would do. The
kept steps become the verification's own `Step`s, their template text and timeout fixed in
`Step.options` at start: a verification keeps that chain whatever the file says later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.domain.models import Channel, Step
from orchestrator.operators.operators_file import Operators
from orchestrator.phone import number_of
from orchestrator.workflows.conditions import Facts, evaluate
from orchestrator.workflows.file import TEXT_CHANNELS, Workflow, WorkflowsFile, WorkflowStep

__all__ = ["Plan", "PlannedStep", "UnknownWorkflow", "plan"]


class UnknownWorkflow(LookupError):
    """No workflow of that name in the current file."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no workflow named {name!r}")
        self.name = name


@dataclass(frozen=True)
class PlannedStep:
    index: int  # in the file's list
    spec: WorkflowStep
    kept: bool
    reason: str
    to: str | None  # the destination (None when skipped for want of one)


@dataclass(frozen=True)
class Plan:
    file: WorkflowsFile
    workflow: Workflow
    to: str
    device_ip: str | None
    steps: tuple[PlannedStep, ...]

    @property
    def kept(self) -> list[PlannedStep]:
        return [s for s in self.steps if s.kept]

    def text_for(self, step: PlannedStep, locale: str) -> tuple[str, str] | None:
        """The template text `step` sends in `locale`, and the locale key it came from."""
        template = self.file.template_of(self.workflow)
        if template is None or step.spec.channel.value not in TEXT_CHANNELS:
            return None
        return template.text_for(step.spec.channel.value, locale)

    def domain_steps(self, locale: str) -> list[Step]:
        """The kept steps as the verification's steps, texts chosen for `locale`."""
        steps: list[Step] = []
        for planned in self.kept:
            assert planned.to is not None
            options: dict[str, Any] = {}
            found = self.text_for(planned, locale)
            if found is not None:
                options["template_text"] = found[0]
            if planned.spec.timeout is not None:
                options["timeout"] = planned.spec.timeout
            if planned.spec.channel is Channel.SILENT_AUTH and self.device_ip is not None:
                options["device_ip"] = self.device_ip
            steps.append(
                Step(
                    channel=planned.spec.channel,
                    to=planned.to,
                    sender=planned.spec.sender,
                    options=options,
                )
            )
        return steps


async def plan(
    file: WorkflowsFile,
    name: str,
    *,
    to: str,
    operators: Operators,
    now: datetime,
    device_ip: str | None = None,
    email: str | None = None,
) -> Plan:
    """Evaluate workflow `name` for the number `to` (E.164 digits, no "+"); raise UnknownWorkflow.
    An email step goes to `email`, and is skipped when there is none."""
    workflow = file.workflows.get(name)
    if workflow is None:
        raise UnknownWorkflow(name)
    digits = to.lstrip("+")
    facts = Facts(digits, number_of(digits), device_ip, operators, now)
    planned: list[PlannedStep] = []
    for i, spec in enumerate(workflow.steps):
        if spec.channel is Channel.EMAIL and not email:
            planned.append(PlannedStep(i, spec, False, "no e-mail address given", None))
            continue
        if spec.channel is Channel.SILENT_AUTH and operators.for_number(digits) is None:
            # the start would answer 412 (not covered): a workflow skips the step instead
            planned.append(PlannedStep(i, spec, False, f"no operator covers +{digits}", None))
            continue
        verdict = await evaluate(spec.when, facts)
        target = email if spec.channel is Channel.EMAIL else digits
        planned.append(PlannedStep(i, spec, verdict.held, "; ".join(verdict.reasons), target))
    return Plan(file, workflow, digits, device_ip, tuple(planned))
