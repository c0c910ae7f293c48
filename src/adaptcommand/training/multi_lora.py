"""Many LoRA adapters on one frozen base model, each sample routed through its own adapter.

A wrapped linear computes, for sample i of the batch routed to adapter p(i),
`y_i = W x_i + scale * B_p A_p dropout(x_i)`: the active adapters' weights are stacked at
forward time, gathered per sample and applied with one batched einsum, so one forward/backward
pass trains several adapters at once while each keeps its own `nn.Parameter`s (and hence its
own optimizer). Weights are named exactly as PEFT names them, so an adapter exported from here
loads with `peft.PeftModel.from_pretrained` unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

PEFT_PREFIX = "base_model.model."


class Routing:
    """Which adapter each sample of the current batch uses; one instance shared by all layers."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.index: Tensor | None = None  # (batch,) positions into `names`


class MultiLoraLinear(nn.Module):
    """A frozen `nn.Linear` plus any number of named LoRA adapters, selected per sample.

    Adapter weights live in plain dicts, not registered submodules: adapters come and go during a
    run and belong to the engine's optimizers, not to the base model's state dict.
    """

    def __init__(self, base: nn.Linear, routing: Routing, r: int, alpha: float,
                 dropout: float) -> None:
        super().__init__()
        self.base = base
        self.routing = routing
        self.r = r
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)
        self.lora_A: dict[str, nn.Parameter] = {}
        self.lora_B: dict[str, nn.Parameter] = {}

    def add_adapter(self, name: str, generator: torch.Generator) -> None:
        """PEFT's default init: A ~ kaiming-uniform(a=sqrt(5)) like nn.Linear, B = 0."""
        a = torch.empty(self.r, self.base.in_features)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
        device = self.base.weight.device
        self.lora_A[name] = nn.Parameter(a.to(device))
        self.lora_B[name] = nn.Parameter(torch.zeros(self.base.out_features, self.r,
                                                     device=device))

    def remove_adapter(self, name: str) -> None:
        del self.lora_A[name], self.lora_B[name]

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        names, index = self.routing.names, self.routing.index
        if not names:
            return out
        a = torch.stack([self.lora_A[n] for n in names])[index]  # (batch, r, in)
        b = torch.stack([self.lora_B[n] for n in names])[index]  # (batch, out, r)
        hidden = torch.einsum("bsi,bri->bsr", self.dropout(x.to(a.dtype)), a)
        return out + (self.scaling * torch.einsum("bsr,bor->bso", hidden, b)).to(out.dtype)


def adapter_seed(seed: int, name: str) -> int:
    """A stable per-adapter seed, independent of Python's randomized `hash`."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class MultiLora:
    """The wrapped layers of one model and the adapters currently held in them."""

    def __init__(self, model: nn.Module, target_modules: list[str], r: int, alpha: float,
                 dropout: float) -> None:
        model.requires_grad_(False)
        self.routing = Routing()
        self.layers: dict[str, MultiLoraLinear] = {}
        targets = [(path, module) for path, module in model.named_modules()
                   if path.rsplit(".", 1)[-1] in target_modules]
        for path, module in targets:
            if not isinstance(module, nn.Linear):
                raise ValueError(f"LoRA target {path} is {type(module).__name__}, not Linear")
            wrapped = MultiLoraLinear(module, self.routing, r, alpha, dropout)
            parent_path, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent_path), child, wrapped)
            self.layers[path] = wrapped
        if not self.layers:
            raise ValueError(f"no module named any of {target_modules} in the model")

    def add_adapter(self, name: str, seed: int, state: dict[str, Tensor] | None = None) -> None:
        """A fresh adapter seeded by (seed, name), or one starting from `state` (PEFT keys)."""
        generator = torch.Generator().manual_seed(adapter_seed(seed, name))
        for layer in self.layers.values():
            layer.add_adapter(name, generator)
        if state is not None:
            self.load_state(name, state)

    def remove_adapter(self, name: str) -> None:
        for layer in self.layers.values():
            layer.remove_adapter(name)

    def parameters_of(self, name: str) -> list[nn.Parameter]:
        return [p for layer in self.layers.values() for p in (layer.lora_A[name],
                                                              layer.lora_B[name])]

    def state_of(self, name: str) -> dict[str, Tensor]:
        """A detached CPU copy of one adapter's weights under PEFT's saved key names."""
        state: dict[str, Tensor] = {}
        for path, layer in self.layers.items():
            state[peft_key(path, "A")] = layer.lora_A[name].detach().cpu().clone()
            state[peft_key(path, "B")] = layer.lora_B[name].detach().cpu().clone()
        return state

    def load_state(self, name: str, state: dict[str, Tensor]) -> None:
        """Copy PEFT-keyed weights into an adapter; a missing or misshapen key is an error."""
        expected = {peft_key(path, part) for path in self.layers for part in "AB"}
        if set(state) != expected:
            missing = sorted(expected - set(state))[:3]
            extra = sorted(set(state) - expected)[:3]
            raise ValueError(f"adapter weights do not match the model: missing {missing}, "
                             f"unexpected {extra}")
        with torch.no_grad():
            for path, layer in self.layers.items():
                for part, params in (("A", layer.lora_A), ("B", layer.lora_B)):
                    tensor = state[peft_key(path, part)]
                    if tensor.shape != params[name].shape:
                        raise ValueError(f"{peft_key(path, part)}: shape {tuple(tensor.shape)}, "
                                         f"expected {tuple(params[name].shape)}")
                    params[name].copy_(tensor)

    @contextlib.contextmanager
    def route(self, names: tuple[str, ...], index: Tensor) -> Iterator[None]:
        """Within the block, sample i of a batch goes through adapter `names[index[i]]`."""
        self.routing.names, self.routing.index = names, index
        try:
            yield
        finally:
            self.routing.names, self.routing.index = (), None


def peft_key(module_path: str, part: str) -> str:
    """`base_model.model.<path>.lora_A.weight`: the key PEFT writes for adapter weights."""
    return f"{PEFT_PREFIX}{module_path}.lora_{part}.weight"
