"""The sandbox operator: a device-IP table plus Vonage's 990 magic numbers, served on /sandbox."""

from __future__ import annotations

import ipaddress
import secrets
import tomllib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class OperatorTable:
    name: str
    covered_prefixes: tuple[str, ...]
    ranges: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]

    @classmethod
    def load(cls, path: Path) -> OperatorTable:
        data = tomllib.loads(path.read_text())
        ranges = tuple(
            (ipaddress.ip_network(r["cidr"], strict=False), str(r["msisdn"]))
            for r in data.get("ranges", [])
        )
        covered = tuple(str(p) for p in data.get("covered_prefixes", []))
        return cls(
            name=str(data.get("name", "Sandbox Mobile")), covered_prefixes=covered, ranges=ranges
        )

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

    def authorize_url(self, *, msisdn: str, state: str, redirect_uri: str) -> str:
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

    async def exchange(self, code: str, msisdn: str) -> DeviceOutcome:
        raw = await self._redis.getdel(constants.SANDBOX_OP_CODE_PREFIX + code)
        if raw is None:
            return DeviceOutcome("failed", FAILED)
        number, outcome, reason = raw.decode().split("|", 2)
        if number != msisdn:
            return DeviceOutcome("failed", MISMATCH)
        if outcome == "completed":
            return DeviceOutcome("completed")
        return DeviceOutcome("user_rejected" if outcome == "user_rejected" else "failed", reason)
