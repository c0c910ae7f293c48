"""Many LoRA adapters on one frozen base model, each sample routed through its own adapter.

A wrapped linear computes, for sample i of the batch routed to adapter p(i),
`y_i = W x_i + scale * B_p A_p dropout(x_i)`: the active adapters' weights are stacked at
forward time, gathered per sample and applied with one batched einsum, so one forward/backward
pass trains several adapters at once while each keeps its own `nn.Parameter`s (and hence its
own optimizer). Weights are named exactly as PEFT names them, so an adapter exported from here
loads with `peft.PeftModel.from_pretrained` unchanged.

Randomness belongs to each adapter, never to the process: its init draws from a generator seeded
by (seed, name), and its dropout masks (PEFT's inverted dropout on the LoRA input, one mask per
target module) from generators seeded by (seed, name, step, module) over its own batch only
(MaskSource). So what an adapter learns does not depend on which adapters share its steps or
its process, on `--personas`, on resume or on Ray sharding.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class MaskSource:
    """One adapter's LoRA dropout masks for one training step, a pure function of its own batch.

    Per target module, positions before `shared` (its batch's own shared prefix, see
    engine.shared_prefix_length) take one mask row common to all its rows, so the engine may run
    that prefix once per adapter; later positions up to `width` take a mask per row. Packing
    with other adapters only pads (right padding, ignored) and may run a shorter common prefix,
    which reads the same masks.
    """

    seed: int  # adapter_seed(config seed, "<name>/step<k>")
    rows: int
    width: int  # its longest example
    shared: int

    def generator(self, module: str, part: str, device: torch.device) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(adapter_seed(self.seed,
                                                                       f"{module}/{part}"))


def keep_mask(shape: tuple[int, ...], p: float, generator: torch.Generator,
              device: torch.device) -> Tensor:
    """Inverted dropout's multiplier, as nn.Dropout draws it: Bernoulli(1 - p) / (1 - p)."""
    return torch.empty(shape, device=device).bernoulli_(1 - p, generator=generator) / (1 - p)


@dataclass(frozen=True)
class DropoutPlan:
    """Where each row of the current forward takes its dropout mask: `rows[i] = (k, r)` is row
    r of adapter k's batch (`r = None`: the adapter's shared prefix), and the forward's first
    column is position `offset`."""

    sources: tuple[MaskSource, ...]  # per routed adapter
    rows: tuple[tuple[int, int | None], ...]
    offset: int = 0

    def mask(self, module: str, length: int, features: int, p: float,
             device: torch.device) -> Tensor:
        """(rows, length, features) multipliers for target module `module`."""
        start, end = self.offset, self.offset + length
        parts: dict[int, tuple[Tensor, Tensor | None]] = {}
        for k in {k for k, _ in self.rows}:
            source = self.sources[k]
            shared = max(0, min(source.shared, source.width))
            common = keep_mask((shared, features), p, source.generator(module, "shared", device),
                               device)
            own = None
            if any(r is not None for kk, r in self.rows if kk == k):
                own = keep_mask((source.rows, source.width - shared, features), p,
                                source.generator(module, "rows", device), device)
            parts[k] = common, own
        masks = []
        for k, r in self.rows:
            common, own = parts[k]
            shared, width = len(common), self.sources[k].width
            pieces = [common[start:min(end, shared)]]
            if own is not None and r is not None:
                pieces.append(own[r, max(0, start - shared):max(0, min(end, width) - shared)])
            filled = sum(len(piece) for piece in pieces)
            pieces.append(torch.ones(length - filled, features, device=device))  # padding
            masks.append(torch.cat(pieces))
        return torch.stack(masks)


class Routing:
    """Which adapter each sample of the current batch uses, and (training) where its dropout
    masks come from; one instance shared by all layers."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.index: Tensor | None = None  # (batch,) positions into `names`
        self.dropout: DropoutPlan | None = None


class MultiLoraLinear(nn.Module):
    """A frozen `nn.Linear` plus any number of named LoRA adapters, selected per sample.

    Adapter weights live in plain dicts, not registered submodules: adapters come and go during a
    run and belong to the engine's optimizers, not to the base model's state dict.
    """

    def __init__(self, base: nn.Linear, routing: Routing, r: int, alpha: float,
                 dropout: float, path: str) -> None:
        super().__init__()
        self.base = base
        self.routing = routing
        self.r = r
        self.scaling = alpha / r
        self.dropout = dropout
        self.path = path  # names this module's dropout masks
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
        x = x.to(a.dtype)
        if self.training and self.dropout > 0:
            plan = self.routing.dropout
            if plan is None:
                raise RuntimeError("LoRA dropout in training needs the adapters' DropoutPlan "
                                   "(MultiLora.route(..., dropout=...)); the process-wide "
                                   "generator is never used")
            x = x * plan.mask(self.path, x.shape[1], x.shape[2], self.dropout, x.device)
        hidden = torch.einsum("bsi,bri->bsr", x, a)
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
            wrapped = MultiLoraLinear(module, self.routing, r, alpha, dropout, path)
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
    def route(self, names: tuple[str, ...], index: Tensor,
              dropout: DropoutPlan | None = None) -> Iterator[None]:
        """Within the block, sample i of a batch goes through adapter `names[index[i]]`, with
        dropout masks (in training) from `dropout`."""
        self.routing.names, self.routing.index, self.routing.dropout = names, index, dropout
        try:
            yield
        finally:
            self.routing.names, self.routing.index, self.routing.dropout = (), None, None


def peft_key(module_path: str, part: str) -> str:
    """`base_model.model.<path>.lora_A.weight`: the key PEFT writes for adapter weights."""
    return f"{PEFT_PREFIX}{module_path}.lora_{part}.weight"
