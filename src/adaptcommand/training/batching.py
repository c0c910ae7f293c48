"""Tokenized examples, their per-adapter batch order, and packing several adapters' batches.

Batch order depends only on (seed, adapter name, epoch), never on which other adapters share
the run, so an adapter trained inside the multi-adapter engine sees exactly the batches it would
see trained alone. Within windows of a few batches, examples are sorted by length before being
cut into batches, so a batch holds similar lengths and little padding. A batch holds at most
`batch_size` supervised replies, however they are packed into sequences: a session example
carrying four replies counts four, so a step learns from the same amount whether examples are
sessions or single turns, and the schedule has the same number of steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from adaptcommand.training.multi_lora import adapter_seed

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One or more assistant turns (training.examples): token ids, and labels equal to them on
    the supervised reply tokens, IGNORE_INDEX everywhere else."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def replies(self) -> int:
        """Supervised spans: the assistant replies this example teaches."""
        previous, spans = IGNORE_INDEX, 0
        for label in self.labels:
            spans += label != IGNORE_INDEX and previous == IGNORE_INDEX
            previous = label
        return spans


@dataclass(frozen=True)
class PackedBatch:
    """Right-padded tensors for one forward pass; `adapter_index[i]` routes sample i."""

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    adapter_index: Tensor


def cut_by_replies(examples: list[Example], budget: int) -> list[list[Example]]:
    """Consecutive groups of at most `budget` supervised replies (an example with more than the
    budget is a group of its own)."""
    groups: list[list[Example]] = []
    count = 0
    for example in examples:
        if not groups or count + example.replies > budget:
            groups.append([])
            count = 0
        groups[-1].append(example)
        count += example.replies
    return groups


def epoch_batches(examples: list[Example], batch_size: int, seed: int, name: str, epoch: int,
                  bucket_batches: int) -> list[list[Example]]:
    """Shuffle, sort each window of `bucket_batches` batches by length, cut into batches of at
    most `batch_size` replies, shuffle the batches. A deterministic function of its arguments,
    so the schedule can count an adapter's steps upfront (planned_steps)."""
    rng = random.Random(adapter_seed(seed, f"{name}/epoch{epoch}"))
    order = list(examples)
    rng.shuffle(order)
    batches: list[list[Example]] = []
    for window in cut_by_replies(order, batch_size * bucket_batches):
        batches += cut_by_replies(sorted(window, key=len), batch_size)
    rng.shuffle(batches)
    return batches


def planned_steps(examples: list[Example], batch_size: int, seed: int, name: str, epochs: int,
                  bucket_batches: int) -> int:
    """Optimizer steps of a full run: the batches of every epoch."""
    return sum(len(epoch_batches(examples, batch_size, seed, name, epoch, bucket_batches))
               for epoch in range(epochs))


def eval_batches(examples: list[Example], batch_size: int) -> list[list[Example]]:
    """Length-sorted batches: evaluation order does not matter, padding does."""
    ordered = sorted(examples, key=len)
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]


def pack(groups: list[list[Example]], device: torch.device) -> PackedBatch:
    """Concatenate several adapters' batches (group g -> adapter index g), right-padded.

    Right padding keeps every real token's position id unchanged, so a sample's outputs do not
    depend on what it is packed with.
    """
    samples = [(g, ex) for g, group in enumerate(groups) for ex in group]
    width = max(len(ex) for _, ex in samples)
    input_ids = torch.zeros(len(samples), width, dtype=torch.long)
    attention_mask = torch.zeros(len(samples), width, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
    for row, (_, ex) in enumerate(samples):
        input_ids[row, :len(ex)] = torch.tensor(ex.input_ids)
        attention_mask[row, :len(ex)] = 1
        labels[row, :len(ex)] = torch.tensor(ex.labels)
    adapter_index = torch.tensor([g for g, _ in samples], dtype=torch.long)
    return PackedBatch(input_ids.to(device), attention_mask.to(device), labels.to(device),
                       adapter_index.to(device))
