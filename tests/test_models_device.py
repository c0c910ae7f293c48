"""Device and dtype resolution: auto picks the accelerator; explicit choices hold or fail."""

from __future__ import annotations

import pytest
import torch

from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.device import resolve_device, resolve_dtype


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize(("gpus", "expected"), [(0, "cpu"), (1, "cuda")])
def test_auto_picks_cuda_only_when_present(monkeypatch, gpus, expected):
    _fake_cuda(monkeypatch, gpus)
    assert resolve_device("auto") == torch.device(expected)


def test_explicit_devices_are_honoured(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize(
    ("gpus", "device", "message"),
    [
        (0, "cuda", "CUDA is not available"),
        (1, "cuda:1", "only 1 GPU"),
        (0, "tpu9", "unknown device"),
        (0, "meta", "unsupported device"),
    ],
)
def test_unavailable_or_unknown_device_is_an_error(monkeypatch, gpus, device, message):
    _fake_cuda(monkeypatch, gpus)
    with pytest.raises(AdaptCommandError, match=message):
        resolve_device(device)


@pytest.mark.parametrize(
    ("device", "dtype", "expected"),
    [
        ("cpu", "auto", torch.float32),
        (torch.device("cuda"), "auto", torch.bfloat16),
        ("cuda:0", "auto", torch.bfloat16),
        ("cpu", "float16", torch.float16),
        ("cuda", "float32", torch.float32),
        ("cpu", "bfloat16", torch.bfloat16),
    ],
)
def test_dtype_defaults_per_device_and_overrides(device, dtype, expected):
    assert resolve_dtype(device, dtype) is expected


def test_unknown_dtype_lists_the_choices():
    with pytest.raises(AdaptCommandError, match="float32, bfloat16, float16"):
        resolve_dtype("cpu", "fp8")
