"""Silent-auth operators: who can tell which number a device is on."""

from .base import DeviceOutcome, Operator
from .sandbox import SandboxOperator

__all__ = ["DeviceOutcome", "Operator", "SandboxOperator"]
