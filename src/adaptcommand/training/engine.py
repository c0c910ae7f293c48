"""The adapter-training loop: many adapters advance in the same forward/backward passes.

One loop (train_loop) trains every adaptation method: epochs, per-adapter AdamW + schedule +
clipping, early stopping, best weights, epoch-end checkpoints and records. A method plugs in
as `AdapterSlots` (where its adapters live on the model and how a packed batch's per-adapter
losses are computed, and how many adapters may share a step): LoRA here (`LoraSlots`, many
adapters per step), prefix tuning in training.prefix (one per step). The slot scheduler
(`_pick`) packs the next batches of the adapters in slots into one step.

Each step packs the next batch of up to `adapters_per_step` adapters (as many as fit in
`max_tokens_per_step`, which bounds activation memory) into one padded batch, routes every
sample through its own adapter (multi_lora), and minimises the sum over adapters of each
adapter's mean token loss. Adapters share no parameters, so each one's gradient is exactly
the gradient of its own batch loss; each has its own AdamW, schedule and clipping. Hence an
adapter trained here follows the same trajectory as trained alone (bit for bit on a CPU, up to
float rounding on a GPU: see forward_passes), while the per-step cost is shared. When an adapter
finishes or stops early it leaves its slot and the next queued adapter takes it, so slots stay
full.

Where the time goes, and what is saved: per-turn examples are ~94% prompt, half of it the system
prompt every example shares. So session examples (training.examples) encode a session's messages
once for all its replies, the shared prefix is computed once per adapter per step instead of once
per example (see _hidden_states), the LM head (a vocabulary-sized matmul) and the loss run on
target positions only, and batches are length-bucketed (batching.epoch_batches) against padding.
An example may supervise several spans (one per reply): every function here takes the labels'
mask as it is, and the shared prefix stops before an example's first supervised token.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DynamicCache, get_scheduler

from adaptcommand.crashpoints import pause_point
from adaptcommand.training.batching import (
    IGNORE_INDEX,
    Example,
    PackedBatch,
    epoch_batches,
    eval_batches,
    pack,
    planned_steps,
)
from adaptcommand.training.checkpoints import Checkpoint, Checkpoints
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.multi_lora import DropoutPlan, MaskSource, MultiLora, adapter_seed

AUTO_ADAPTERS_PER_STEP = 8  # on a GPU, with adapters_per_step null
# Below this many shared leading tokens, computing them once is not worth a second pass.
MIN_SHARED_PREFIX = 8
# Where a packed step runs each adapter's own forward, bit-identical to training it alone
# (forward_passes); elsewhere its adapters share one pass.
BITWISE_DEVICE_TYPES = frozenset({"cpu"})


@dataclass
class AdapterJob:
    """One adapter to train: its examples and, for hybrid runs, the weights it starts from."""

    name: str
    train: list[Example]
    val: list[Example]
    init_state: dict[str, Tensor] | None = None


@dataclass
class AdapterResult:
    """A finished adapter: its best weights (PEFT keys) and its training record."""

    name: str
    state: dict[str, Tensor]
    train_examples: int
    val_examples: int
    steps: int
    best_epoch: int  # 1-based epoch whose weights are kept
    train_loss: list[float]  # per epoch, mean of the step losses
    val_loss: list[float | None]  # per epoch, token-weighted over the val examples
    tokens: int  # non-padding tokens trained on
    seconds: float  # this adapter's token-weighted share of the wall time
    stopped_early: bool

    def record(self) -> dict[str, object]:
        """The JSON-ready summary of this adapter (everything but the weights)."""
        return {
            "train_examples": self.train_examples, "val_examples": self.val_examples,
            "steps": self.steps, "epochs_run": len(self.train_loss), "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early, "train_loss": self.train_loss,
            "val_loss": self.val_loss, "tokens": self.tokens, "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class StepReport:
    """What one engine step did, for progress display."""

    losses: dict[str, float]
    progress: dict[str, float]  # fraction of each stepped adapter's planned steps done
    tokens: int
    seconds: float


def early_stopping(val_losses: list[float], patience: int | None,
                   min_delta: float) -> tuple[int, bool]:
    """(0-based index of the best epoch so far, whether to stop now)."""
    best_index = 0
    for index, value in enumerate(val_losses):
        if value < val_losses[best_index] - min_delta:
            best_index = index
    stop = patience is not None and len(val_losses) - 1 - best_index >= patience
    return best_index, stop


def best_epoch(val_loss: list[float | None], config: TrainingConfig) -> tuple[int, bool]:
    """early_stopping over the epochs so far; without val data every epoch is the newest best
    and the adapter runs the full length."""
    if val_loss[-1] is None:
        return len(val_loss) - 1, False
    return early_stopping([v for v in val_loss if v is not None], config.early_stopping.patience,
                          config.early_stopping.min_delta)


@dataclass
class _Run:
    """The live state of one adapter in a slot."""

    job: AdapterJob
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    planned_steps: int
    pending: deque[list[Example]] = field(default_factory=deque)
    epoch_losses: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    best_state: dict[str, Tensor] | None = None
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0


def adapter_optimizer(params: list[nn.Parameter], job: AdapterJob, config: TrainingConfig
                      ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, int]:
    """One adapter's AdamW, its warm-up + decay schedule, and its planned number of steps."""
    optimizer = torch.optim.AdamW(params, lr=config.optimizer.learning_rate,
                                  weight_decay=config.optimizer.weight_decay)
    planned = planned_steps(job.train, config.optimizer.batch_size, config.seed, job.name,
                            config.optimizer.epochs, config.data.length_bucket_batches)
    scheduler = get_scheduler(config.optimizer.lr_scheduler, optimizer,
                              num_warmup_steps=math.ceil(planned * config.optimizer.warmup_ratio),
                              num_training_steps=planned)
    return optimizer, scheduler, planned


class AdapterSlots(Protocol):
    """An adaptation method as the loop sees it."""

    model: nn.Module
    needs_dropout: bool  # whether training steps need the adapters' DropoutPlan

    def add(self, name: str, seed: int, state: dict[str, Tensor] | None) -> list[nn.Parameter]:
        """Put adapter `name` on the model (fresh, seeded by (seed, name), or from `state`);
        its trainable parameters."""
        ...

    def state_of(self, name: str) -> dict[str, Tensor]:
        """A CPU copy of its weights under PEFT's saved key names."""
        ...

    def remove(self, name: str) -> None: ...

    def width(self, config: TrainingConfig) -> int:
        """How many adapters may share one step."""
        ...

    def losses(self, names: tuple[str, ...], batch: PackedBatch,
               dropout: DropoutPlan | None) -> tuple[Tensor, Tensor]:
        """Per-adapter (sum of token losses, number of target tokens); row i of `batch`
        belongs to `names[batch.adapter_index[i]]`."""
        ...


def _start(job: AdapterJob, slots: AdapterSlots, config: TrainingConfig,
           checkpoints: Checkpoints | None) -> _Run:
    """A slot for `job`: fresh, or continuing from its last epoch-end checkpoint."""
    if not job.train:
        raise ValueError(f"adapter {job.name!r} has no training examples")
    saved = checkpoints.load(job.name) if checkpoints is not None else None
    params = slots.add(job.name, config.seed, saved.weights if saved else job.init_state)
    run = _Run(job, params, *adapter_optimizer(params, job, config))
    if saved is not None:
        run.optimizer.load_state_dict(saved.optimizer)
        run.scheduler.load_state_dict(saved.scheduler)
        run.best_state = saved.best
        for field_name, value in saved.progress.items():
            setattr(run, field_name, value)
    _queue_epoch(run, config)
    return run


def _checkpoint(run: _Run, slots: AdapterSlots) -> Checkpoint:
    """Everything a resumed run needs to continue `run` bit for bit (see training.checkpoints)."""
    progress = {"train_loss": run.train_loss, "val_loss": run.val_loss, "steps": run.steps,
                "tokens": run.tokens, "seconds": run.seconds}
    return Checkpoint(slots.state_of(run.job.name), run.best_state, run.optimizer.state_dict(),
                      run.scheduler.state_dict(), progress)


def _queue_epoch(run: _Run, config: TrainingConfig) -> None:
    run.pending.extend(epoch_batches(run.job.train, config.optimizer.batch_size, config.seed,
                                     run.job.name, len(run.train_loss),
                                     config.data.length_bucket_batches))


def shared_prefix_length(batch: PackedBatch) -> int:
    """Leading tokens every row shares (the system prompt), stopping before the last prompt token
    of the row whose target starts first, so every loss position lies after the prefix."""
    ids = batch.input_ids
    same = int((ids == ids[:1]).all(dim=0).long().cumprod(dim=0).sum())
    first_target = int((batch.labels != IGNORE_INDEX).long().argmax(dim=1).min())
    shortest = int(batch.attention_mask.sum(dim=1).min())
    return min(same, first_target - 1, shortest - 1)


def _adapter_rows(batch: PackedBatch, adapters: list[int]) -> PackedBatch:
    """The rows of `adapters` (their order), renumbered 0.. and cut to their own width."""
    rows = torch.cat([(batch.adapter_index == k).nonzero()[:, 0] for k in adapters])
    width = int(batch.attention_mask[rows].sum(dim=1).max())
    index = torch.empty_like(batch.adapter_index[rows])
    for position, k in enumerate(adapters):
        index[batch.adapter_index[rows] == k] = position
    return PackedBatch(batch.input_ids[rows, :width], batch.attention_mask[rows, :width],
                       batch.labels[rows, :width], index)


def prefix_split(batch: PackedBatch) -> int:
    """Where one adapter's rows (all of `batch`) split into a once-run prefix and the rest: its
    own shared_prefix_length, or 0 (one full pass) when that is below MIN_SHARED_PREFIX."""
    start = shared_prefix_length(batch)
    return start if start >= MIN_SHARED_PREFIX else 0


def forward_passes(batch: PackedBatch, n_adapters: int) -> list[tuple[int, list[int]]]:
    """(prefix split, adapter indices) of each forward a packed batch runs as.

    On a GPU all adapters share one pass, split at the shortest of their prefix_split, which
    is what packing is for. On a CPU each adapter runs its own pass, on its own rows cut to its
    own width and split at its own prefix_split: exactly the arithmetic of training it alone, so
    packing cannot change one bit of its weights (issue 13). Measured on the tiny Llama, one
    thread, one step: extra rows change no bit, nor does right padding in a full pass; but
    a different split does (the cached prefix sums its gradient over rows in another order; up
    to 6e-8 per gradient entry) and so does right padding after a cached prefix (the padded
    queries join the key/value gradient's sums; up to 2e-8), at dropout 0 as at 0.05. A CPU
    loses little by this: it is compute-bound at one adapter's batch (adapters_per_step is 1
    there unless set), and a GPU's bf16 reductions are not bitwise reproducible anyway.
    """
    present = [k for k in range(n_adapters) if bool((batch.adapter_index == k).any())]
    splits = {k: prefix_split(_adapter_rows(batch, [k])) for k in present}
    if batch.input_ids.device.type not in BITWISE_DEVICE_TYPES:
        return [(min(splits.values()), present)]
    return [(splits[k], [k]) for k in present]


def _hidden_states(model: nn.Module, lora: MultiLora, names: tuple[str, ...],
                   batch: PackedBatch, start: int, dropout: DropoutPlan | None = None) -> Tensor:
    """Final hidden states from position `start` on, every adapter having a row in `batch`.

    Every example opens with the same system prompt, often half its tokens. That prefix (the
    first `start` tokens, shared by each adapter's rows) runs once per adapter instead of once
    per row; its keys/values are then gathered to the rows (autograd flows through the gather),
    and the rest of each row attends to them. Same math as one full pass (`start` 0), dropout
    included: an adapter's rows share their dropout mask up to their own shared prefix, which is
    never shorter than `start` (multi_lora.MaskSource).
    """
    decoder = model.get_decoder()
    if start == 0:
        with lora.route(names, batch.adapter_index, dropout):
            return decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           use_cache=False).last_hidden_state
    device = batch.input_ids.device
    def plan(offset: int, shared: bool) -> DropoutPlan | None:
        if dropout is None:
            return None
        rows = tuple((k, None) for k in range(len(names))) if shared else dropout.rows
        return DropoutPlan(dropout.sources, rows, offset)

    cache = DynamicCache()  # positional below: the keyword is past_key_values or cache by version
    first_rows = [int((batch.adapter_index == k).nonzero()[0, 0]) for k in range(len(names))]
    prefix = batch.input_ids[first_rows, :start]
    with lora.route(names, torch.arange(len(names), device=device), plan(0, shared=True)):
        decoder(prefix, None, None, cache, use_cache=True)
    cache.reorder_cache(batch.adapter_index)
    positions = torch.arange(start, batch.input_ids.shape[1], device=device)[None]
    with lora.route(names, batch.adapter_index, plan(start, shared=False)):
        return decoder(batch.input_ids[:, start:], batch.attention_mask, positions, cache,
                       use_cache=True).last_hidden_state


def _token_losses(model: nn.Module, lora: MultiLora, names: tuple[str, ...],
                  batch: PackedBatch, dropout: DropoutPlan | None = None
                  ) -> tuple[Tensor, Tensor]:
    """Per-adapter (sum of token losses, number of target tokens) for one packed batch, run as
    forward_passes says."""
    sums = torch.zeros(len(names), device=batch.input_ids.device)
    counts = torch.zeros(len(names), dtype=torch.long, device=batch.input_ids.device)
    for start, adapters in forward_passes(batch, len(names)):
        part = batch if len(adapters) == len(names) else _adapter_rows(batch, adapters)
        part_dropout = None if dropout is None else DropoutPlan(
            tuple(dropout.sources[k] for k in adapters),
            tuple((adapters.index(k), r) for k, r in dropout.rows if k in adapters))
        hidden = _hidden_states(model, lora, tuple(names[k] for k in adapters), part, start,
                                part_dropout)
        part_sums, part_counts = target_losses(model, hidden, start, part, len(adapters))
        index = torch.tensor(adapters, device=sums.device)
        sums = sums.index_add(0, index, part_sums)
        counts = counts.index_add(0, index, part_counts)
    return sums, counts


def target_losses(model: nn.Module, hidden: Tensor, start: int, batch: PackedBatch,
                  n_adapters: int) -> tuple[Tensor, Tensor]:
    """Per-adapter (sum, count) of the token losses, given the final hidden states from
    position `start` on: the LM head runs on target positions only."""
    targets = batch.labels[:, start + 1:]
    mask = targets != IGNORE_INDEX
    logits = model.get_output_embeddings()(hidden[:, :-1][mask]).float()
    token_loss = F.cross_entropy(logits, targets[mask], reduction="none")
    owner = batch.adapter_index[:, None].expand_as(targets)[mask]
    sums = torch.zeros(n_adapters, device=token_loss.device).index_add(0, owner, token_loss)
    counts = torch.bincount(owner, minlength=n_adapters)
    return sums, counts


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _width(run: _Run) -> int:
    return max(len(ex) for ex in run.pending[0])


def _pick(slots: list[_Run], max_tokens: int, slack: float) -> list[_Run]:
    """The first slot (round-robin fairness) plus the slots whose next batches are closest to it
    in length, as long as the pack stays within `max_tokens` padded tokens and packing adds at
    most `slack` padding over running the batches apart."""
    anchor, *others = slots
    chosen, rows, width = [anchor], len(anchor.pending[0]), _width(anchor)
    for run in sorted(others, key=lambda r: abs(_width(r) - _width(anchor))):
        more, wider = rows + len(run.pending[0]), max(width, _width(run))
        apart = rows * width + len(run.pending[0]) * _width(run)
        if more * wider <= max_tokens and more * wider <= (1 + slack) * apart:
            chosen, rows, width = [*chosen, run], more, wider
    return chosen


def step_dropout(runs: list[_Run], groups: list[list[Example]],
                 config: TrainingConfig) -> DropoutPlan:
    """Each adapter's dropout masks for this step: seeded by (seed, name, its step count) and
    shaped by its own batch alone, so packing, order and resume cannot change them."""
    sources = tuple(
        MaskSource(adapter_seed(config.seed, f"{run.job.name}/step{run.steps}"), len(group),
                   max(len(ex) for ex in group),
                   shared_prefix_length(pack([group], torch.device("cpu"))))
        for run, group in zip(runs, groups, strict=True))
    rows = tuple((k, r) for k, group in enumerate(groups) for r in range(len(group)))
    return DropoutPlan(sources, rows)


def _train_step(slots: AdapterSlots, runs: list[_Run], config: TrainingConfig) -> StepReport:
    """One packed forward/backward, then each adapter's own clip + AdamW + schedule step."""
    started = time.perf_counter()
    groups = [run.pending.popleft() for run in runs]
    batch = pack(groups, _device_of(slots.model))
    slots.model.train()
    dropout = step_dropout(runs, groups, config) if slots.needs_dropout else None
    sums, counts = slots.losses(tuple(run.job.name for run in runs), batch, dropout)
    losses = sums / counts.clamp(min=1)
    losses.sum().backward()
    pause_point("train.step")
    for run in runs:
        if config.optimizer.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(run.params, config.optimizer.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    tokens = [sum(len(ex) for ex in group) for group in groups]
    values = losses.tolist()
    seconds = time.perf_counter() - started
    for run, loss, n in zip(runs, values, tokens, strict=True):
        run.epoch_losses.append(loss)
        run.steps += 1
        run.tokens += n
        run.seconds += seconds * n / sum(tokens)
    return StepReport({r.job.name: v for r, v in zip(runs, values, strict=True)},
                      {r.job.name: r.steps / r.planned_steps for r in runs}, sum(tokens), seconds)


def validates(config: TrainingConfig) -> bool:
    """Whether the val loss can change what is kept (which epoch, when to stop), or is asked
    for anyway; a one-epoch run keeps its only epoch."""
    return config.optimizer.epochs > 1 or config.throughput.single_epoch_validation


@torch.no_grad()
def _validate(slots: AdapterSlots, runs: list[_Run],
              config: TrainingConfig) -> list[float | None]:
    """Token-weighted val loss of each run, the runs' val batches packed side by side."""
    started = time.perf_counter()
    slots.model.eval()
    names = tuple(run.job.name for run in runs)
    sums = torch.zeros(len(runs), dtype=torch.float64)
    counts = torch.zeros(len(runs), dtype=torch.long)
    per_run = [eval_batches(run.job.val, config.throughput.eval_batch_size) for run in runs]
    for step_groups in zip_longest(*per_run, fillvalue=[]):
        batch = pack(list(step_groups), _device_of(slots.model))
        step_sums, step_counts = slots.losses(names, batch, None)
        sums += step_sums.cpu().double()
        counts += step_counts.cpu()
    share = (time.perf_counter() - started) / len(runs)
    for run in runs:
        run.seconds += share
    return [float(s / c) if c else None for s, c in zip(sums, counts, strict=True)]


def _end_epoch(run: _Run, val: float | None, slots: AdapterSlots, config: TrainingConfig,
               checkpoints: Checkpoints | None) -> AdapterResult | None:
    """Record the epoch, keep the best weights; return the result if the adapter is done,
    else checkpoint it."""
    run.train_loss.append(sum(run.epoch_losses) / len(run.epoch_losses))
    run.epoch_losses = []
    run.val_loss.append(val)
    best_index, stop = best_epoch(run.val_loss, config)
    if best_index == len(run.val_loss) - 1:
        run.best_state = slots.state_of(run.job.name)
    finished = len(run.train_loss) == config.optimizer.epochs
    if not (stop or finished):
        if checkpoints is not None:
            checkpoints.save(run.job.name, _checkpoint(run, slots))
        _queue_epoch(run, config)
        return None
    assert run.best_state is not None
    return AdapterResult(run.job.name, run.best_state, len(run.job.train), len(run.job.val),
                         run.steps, best_index + 1,
                         run.train_loss, run.val_loss, run.tokens, run.seconds,
                         stopped_early=stop and not finished)


def adapters_per_step(config: TrainingConfig, device: torch.device) -> int:
    """The configured number, else 8 on a GPU (fuller batches) and 1 on a CPU (already
    compute-bound at one adapter's batch)."""
    if config.throughput.adapters_per_step is not None:
        return config.throughput.adapters_per_step
    return AUTO_ADAPTERS_PER_STEP if device.type == "cuda" else 1


class LoraSlots:
    """LoRA adapters in a MultiLora: many per step, each row through its own adapter."""

    def __init__(self, model: nn.Module, lora: MultiLora) -> None:
        self.model = model
        self.lora = lora
        self.needs_dropout = any(layer.dropout > 0 for layer in lora.layers.values())

    def add(self, name: str, seed: int, state: dict[str, Tensor] | None) -> list[nn.Parameter]:
        self.lora.add_adapter(name, seed, state)
        return self.lora.parameters_of(name)

    def state_of(self, name: str) -> dict[str, Tensor]:
        return self.lora.state_of(name)

    def remove(self, name: str) -> None:
        self.lora.remove_adapter(name)

    def width(self, config: TrainingConfig) -> int:
        return adapters_per_step(config, _device_of(self.model))

    def losses(self, names: tuple[str, ...], batch: PackedBatch,
               dropout: DropoutPlan | None) -> tuple[Tensor, Tensor]:
        return _token_losses(self.model, self.lora, names, batch, dropout)


def train_adapters(model: nn.Module, lora: MultiLora, jobs: Iterable[AdapterJob],
                   config: TrainingConfig, on_result: Callable[[AdapterResult], None],
                   on_step: Callable[[StepReport], None] | None = None,
                   checkpoints: Checkpoints | None = None) -> None:
    """LoRA adapters through train_loop, `adapters_per_step(config, device)` at a time."""
    train_loop(LoraSlots(model, lora), jobs, config, on_result, on_step, checkpoints)


def train_loop(slots: AdapterSlots, jobs: Iterable[AdapterJob], config: TrainingConfig,
               on_result: Callable[[AdapterResult], None],
               on_step: Callable[[StepReport], None] | None = None,
               checkpoints: Checkpoints | None = None) -> None:
    """Train every job, `slots.width(config)` adapters at a time; `on_result` gets each
    finished adapter as soon as it is done (so the caller can save it before the next one
    finishes). With `checkpoints`, an adapter resumes from its last epoch-end checkpoint and
    saves one at every epoch end that does not finish it. Nothing draws from torch's
    process-wide generator (see multi_lora)."""
    queue = iter(jobs)  # consumed lazily: only the adapters in slots hold examples in memory
    live: list[_Run] = []
    width = slots.width(config)
    while True:
        while len(live) < width and (job := next(queue, None)) is not None:
            live.append(_start(job, slots, config, checkpoints))
        if not live:
            return
        ending = [run for run in live if not run.pending]
        if ending:
            values = (_validate(slots, ending, config) if validates(config)
                      else [None] * len(ending))
            for run, val in zip(ending, values, strict=True):
                result = _end_epoch(run, val, slots, config, checkpoints)
                if result is not None:
                    live.remove(run)
                    slots.remove(run.job.name)
                    on_result(result)
            continue
        stepping = _pick(live, config.throughput.max_tokens_per_step,
                         config.throughput.pack_padding_slack)
        report = _train_step(slots, stepping, config)
        live = [run for run in live if run not in stepping] + stepping  # left-out ones first
        if on_step is not None:
            on_step(report)
