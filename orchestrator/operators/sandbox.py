"""The sandbox operator: a device-IP table plus Vonage's 990 magic numbers, served on /sandbox."""

from __future__ import annotations

import ipaddress
import secrets
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from redis.asyncio import Redis

from orchestrator import constants
from orchestrator.operators.base import DeviceOutcome, Operator
from orchestrator.phone import is_sandbox_number

__all__ = ["OperatorTable", "SandboxOperator"]

CODE_TTL = 300
NO_CELLULAR = "IP Address does not resolve to a cellular device."
MISMATCH = "Device MSISDN does not match."
FAILED = "The silent auth verification cannot be completed."
REJECTED = "The user rejected the silent authentication request."


# Vonage's virtual operator for SIM swap: a 990… number ending in 8 changed its SIM this long ago
MAGIC_SWAP_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class OperatorTable:
    name: str
    covered_prefixes: tuple[str, ...]
    ranges: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]
    # [[sim_swaps]] msisdn + swapped_at (TOML datetime, or ISO 8601 text): the latest SIM change
    sim_swaps: tuple[tuple[str, datetime], ...] = ()

    @classmethod
    def load(cls, path: Path) -> OperatorTable:
        data = tomllib.loads(path.read_text())
        ranges = tuple(
            (ipaddress.ip_network(r["cidr"], strict=False), str(r["msisdn"]))
            for r in data.get("ranges", [])
        )
        covered = tuple(str(p) for p in data.get("covered_prefixes", []))
        swaps = tuple(
            (str(s["msisdn"]).lstrip("+"), _aware(s["swapped_at"]))
            for s in data.get("sim_swaps", [])
        )
        return cls(
            name=str(data.get("name", "Sandbox Mobile")),
            covered_prefixes=covered,
            ranges=ranges,
            sim_swaps=swaps,
        )

    def swapped_at(self, msisdn: str, now: datetime) -> datetime | None:
        """When the SIM of `msisdn` (E.164 digits) last changed; None when the table knows of no
        change. Listed numbers first; else a 990… number ending in 8 changed an hour before
        `now` (Vonage's virtual operator)."""
        digits = msisdn.lstrip("+")
        for number, at in self.sim_swaps:
            if number == digits:
                return at
        if is_sandbox_number(digits) and digits.endswith("8"):
            return now - MAGIC_SWAP_AGE
        return None

    def msisdn_for(self, ip: str) -> str | None:
        """The number of the line behind a device IP; the most specific range wins."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        best: tuple[int, str] | None = None
        for network, msisdn in self.ranges:
            if addr.version == network.version and addr in network:
                if best is None or network.prefixlen > best[0]:
                    best = (network.prefixlen, msisdn)
        return None if best is None else best[1]


def _aware(value: object) -> datetime:
    """A TOML datetime (or ISO 8601 text) as an aware UTC datetime; a naive one counts as UTC."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def magic_outcome(msisdn: str) -> DeviceOutcome:
    """Vonage's virtual operator: …99 fails, odd is rejected by the user, even completes."""
    if msisdn.endswith("99"):
        return DeviceOutcome("failed", FAILED)
    if int(msisdn[-1]) % 2:
        return DeviceOutcome("user_rejected", REJECTED)
    return DeviceOutcome("completed")


class SandboxOperator(Operator):
    """A real Operator whose "network" is a table; its authorize hop is served by this service."""

    def __init__(self, redis: Redis, table: OperatorTable, public_url: str) -> None:
        self.name = table.name
        self._redis = redis
        self.table = table
        self._public_url = public_url.rstrip("/")

    async def covers(self, msisdn: str) -> bool:
        return any(msisdn.startswith(p) for p in self.table.covered_prefixes)

    async def authorize_url(self, *, msisdn: str, state: str, redirect_uri: str) -> str:
        query = urlencode(
            {"login_hint": f"tel:+{msisdn}", "state": state, "redirect_uri": redirect_uri}
        )
        return f"{self._public_url}/sandbox/operator/authorize?{query}"

    async def authorize(self, *, device_ip: str, msisdn: str) -> str:
        """The operator's side of the hop: recognise the device, remember the verdict, mint a code."""
        if is_sandbox_number(msisdn):
            outcome = magic_outcome(msisdn)
        else:
            line = self.table.msisdn_for(device_ip)
            if line is None:
                outcome = DeviceOutcome("failed", NO_CELLULAR)
            elif line != msisdn:
                outcome = DeviceOutcome("failed", MISMATCH)
            else:
                outcome = DeviceOutcome("completed")
        code = secrets.token_urlsafe(18)
        value = f"{msisdn}|{outcome.outcome}|{outcome.reason}"
        await self._redis.set(constants.SANDBOX_OP_CODE_PREFIX + code, value, ex=CODE_TTL)
        return code

    async def exchange(
        self, code: str, msisdn: str, *, state: str = "", redirect_uri: str = ""
    ) -> DeviceOutcome:
        # the code is single use and bound to the number; this operator needs no PKCE
        raw = await self._redis.getdel(constants.SANDBOX_OP_CODE_PREFIX + code)
        if raw is None:
            return DeviceOutcome("failed", FAILED)
        number, outcome, reason = raw.decode().split("|", 2)
        if number != msisdn:
            return DeviceOutcome("failed", MISMATCH)
        if outcome == "completed":
            return DeviceOutcome("completed")
        return DeviceOutcome("user_rejected" if outcome == "user_rejected" else "failed", reason)

    async def sim_swapped(self, msisdn: str, max_age_hours: int) -> bool:
        """From the table: a change no older than `max_age_hours` counts (the table always
        answers, so this never raises OperatorUnavailable)."""
        now = datetime.now(UTC)
        at = self.table.swapped_at(msisdn, now)
        return at is not None and now - at <= timedelta(hours=max_age_hours)
