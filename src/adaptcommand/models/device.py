"""Where models run and in which precision: one decision shared by training, evaluation, serving.

CUDA + bfloat16 when a GPU is present (bf16 keeps fp32's range, so LoRA training needs no loss
scaling), else CPU + float32 (CPU bf16 matmuls are slow and lossy on most CPUs).
"""

from __future__ import annotations

import torch

from adaptcommand.errors import AdaptCommandError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when available; an explicit device that does not exist is an error,
    not a silent fallback, so a run never lands on CPU by accident."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise AdaptCommandError(
            f"unknown device {device!r}: use auto, cpu, cuda or cuda:N"
        ) from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise AdaptCommandError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise AdaptCommandError(f"device {device!r} requested but CUDA is not available")
    count = torch.cuda.device_count()
    if resolved.index is not None and resolved.index >= count:
        raise AdaptCommandError(f"device {device!r} requested but only {count} GPU(s) present")
    return resolved


def resolve_dtype(device: torch.device | str, dtype: str = "auto") -> torch.dtype:
    """`auto` is bfloat16 on CUDA and float32 elsewhere; a named dtype is always honoured."""
    if dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise AdaptCommandError(f"unknown dtype {dtype!r}: use auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]
