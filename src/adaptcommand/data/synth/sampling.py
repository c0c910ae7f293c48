"""Seeded sampling helpers shared by the generator's modules."""

from __future__ import annotations

import itertools
import random
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    """One key of `weights`, drawn with those weights."""
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def weighted_sample(rng: random.Random, weights: dict[str, float], k: int) -> list[str]:
    """k distinct keys drawn by weight, in the order drawn."""
    pool = dict(weights)
    chosen = []
    for _ in range(k):
        key = pick(rng, pool)
        chosen.append(key)
        del pool[key]
    return chosen


@cache
def _zipf(n: int) -> tuple[float, ...]:
    return tuple(itertools.accumulate(rank ** -2 for rank in range(1, n + 1)))


def favourite(rng: random.Random, options: tuple[T, ...]) -> T:
    """Earlier options more often (weights 1/rank^2): real speech keeps coming back
    to its favourite wordings."""
    return rng.choices(options, cum_weights=_zipf(len(options)))[0]
