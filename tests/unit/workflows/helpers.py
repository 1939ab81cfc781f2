"""Operators for the workflow tests: the sandbox operator on the repository's table (it needs no
Redis to answer coverage and SIM swaps) and a stand-in CAMARA operator."""

from __future__ import annotations

from typing import Any

from orchestrator.operators.base import DeviceOutcome, Operator, OperatorUnavailable
from orchestrator.operators.operators_file import Operators, _Entry
from orchestrator.operators.sandbox import OperatorTable, SandboxOperator
from orchestrator.settings import CONFIG_DIR


class FakeCamara(Operator):
    """Covers what its prefixes say; its SIM Swap answer is `swapped`, or unavailable (None)."""

    def __init__(self, name: str, swapped: bool | None) -> None:
        self.name = name
        self.swapped = swapped
        self.asked: list[tuple[str, int]] = []

    async def covers(self, msisdn: str) -> bool:
        return True

    async def authorize_url(self, *, msisdn: str, state: str, redirect_uri: str) -> str:
        raise OperatorUnavailable("not in these tests")

    async def exchange(
        self, code: str, msisdn: str, *, state: str, redirect_uri: str
    ) -> DeviceOutcome:
        return DeviceOutcome("failed", "not in these tests")

    async def sim_swapped(self, msisdn: str, max_age_hours: int) -> bool:
        self.asked.append((msisdn, max_age_hours))
        if self.swapped is None:
            raise OperatorUnavailable("token endpoint unreachable")
        return self.swapped


def sandbox_operator() -> SandboxOperator:
    table = OperatorTable.load(CONFIG_DIR / "sandbox_operator.toml")
    redis: Any = None  # coverage and SIM swaps come from the table alone
    return SandboxOperator(redis, table, "http://127.0.0.1:8080")


def operators(*extra: tuple[str, Operator, tuple[str, ...]]) -> Operators:
    """The sandbox operator on its covered prefixes, plus `extra` (name, operator, prefixes)."""
    sandbox = sandbox_operator()
    entries = [_Entry(name, op, prefixes, True, True) for name, op, prefixes in extra]
    entries.append(_Entry("sandbox", sandbox, sandbox.table.covered_prefixes, True, True))
    return Operators(entries)
