"""The arms of the comparison: the `Arm` dataclass and the registry every plan reads."""

from adaptcommand.arms.arm import COLD_START, GROUPS, TEST, Arm
from adaptcommand.arms.registry import (
    ALL_ARMS,
    ARMS,
    CORE,
    REGISTRY,
    description,
    get_arm,
    list_arms,
    resolve_arms,
)

__all__ = ["ALL_ARMS", "ARMS", "COLD_START", "CORE", "GROUPS", "REGISTRY", "TEST", "Arm",
           "description", "get_arm", "list_arms", "resolve_arms"]
