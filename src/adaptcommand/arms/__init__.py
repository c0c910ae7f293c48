"""The arms of the comparison: the `Arm` dataclass, the registry every plan reads, and one
module per arm family holding what that arm adds to the pipeline: `memory` (retrieval memory),
`profile` (profile prompts at evaluation), `distilled` (profile-distilled training examples),
`clusters` (behaviour clusters), `merged` (merged adapters for new users). Training strategies
and adapter methods (LoRA, prefix tuning) live in `training/`."""

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
