"""Silent-auth operators: who can tell which number a device is on."""

from orchestrator.operators.base import DeviceOutcome, Operator
from orchestrator.operators.sandbox import SandboxOperator

__all__ = ["DeviceOutcome", "Operator", "SandboxOperator"]
