"""Uncertainty for evaluation numbers: cluster bootstrap, paired deltas and the sign test.

Turns within a session (and sessions within a persona) are correlated, so intervals come from
resampling whole clusters, never single turns. Each cluster is reduced to a row of sums (for a
mean: value sum and turn count; for micro F1: TP, FP, FN), and a statistic maps summed columns
to a number. One design serves means and ratio metrics alike, and a resample is a matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps column sums of shape (..., k) to values of shape (...); must broadcast over leading axes."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n_clusters: int


@dataclass(frozen=True)
class SignTest:
    """Counts of helped/hurt/tied units and the exact two-sided binomial p-value (ties dropped)."""

    helped: int
    hurt: int
    tied: int
    p_value: float


@dataclass(frozen=True)
class DeltaSummary:
    """How per-persona deltas (adapted minus baseline) are distributed, for the report."""

    n_personas: int
    mean: Interval
    sign_test: SignTest
    share_helped: float
    top: list[tuple[str, float]]
    bottom: list[tuple[str, float]]


def mean_of_sums(sums: np.ndarray) -> np.ndarray:
    """Statistic for clusters given as (value sum, count): the pooled per-item mean."""
    return sums[..., 0] / sums[..., 1]


def micro_f1(sums: np.ndarray) -> np.ndarray:
    """Statistic for clusters given as (TP, FP, FN): micro F1, defined as 1 when nothing is due."""
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    denominator = 2 * tp + fp + fn
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, 2 * tp / safe, 1.0)


def sum_count_rows(values_by_cluster: Sequence[Sequence[float]]) -> np.ndarray:
    """Reduce per-item values grouped by cluster to (sum, count) rows for `mean_of_sums`."""
    return np.array([(math.fsum(values), len(values)) for values in values_by_cluster], float)


def bootstrap_ci(
    cluster_sums: ArrayLike,
    statistic: Statistic,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Cluster bootstrap percentile interval of `statistic` over pooled cluster sums.

    A resample draws n clusters with replacement; multinomial counts of how often each cluster
    is drawn, times the sums matrix, give every resample's pooled sums in one product.
    """
    sums = np.asarray(cluster_sums, dtype=float)
    if sums.ndim == 1:
        sums = sums[:, None]
    if sums.ndim != 2 or sums.shape[0] == 0:
        raise ValueError("cluster_sums must be a non-empty (n_clusters, k) array")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n_clusters = sums.shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_resamples)
    resampled = statistic(draws @ sums)
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(resampled, [alpha, 1 - alpha])
    estimate = statistic(sums.sum(axis=0))
    return Interval(float(estimate), float(low), float(high), n_clusters)


def mean_ci(
    values_by_cluster: Sequence[Sequence[float]],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Cluster bootstrap interval of the per-item mean, e.g. per-turn scores grouped by session."""
    rows = sum_count_rows(values_by_cluster)
    return bootstrap_ci(rows, mean_of_sums, n_resamples, confidence, seed)


def paired_bootstrap_mean_delta(
    deltas: Sequence[float],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval of the mean paired delta, each persona's delta being its own cluster."""
    return mean_ci([[delta] for delta in deltas], n_resamples, confidence, seed)


def _split_signs(deltas: Sequence[float], tie_tolerance: float) -> tuple[int, int, int]:
    """Counts of deltas above, below and within `tie_tolerance` of zero."""
    values = np.asarray(deltas, dtype=float)
    helped = int(np.sum(values > tie_tolerance))
    hurt = int(np.sum(values < -tie_tolerance))
    return helped, hurt, len(values) - helped - hurt


def share_helped(deltas: Sequence[float], tie_tolerance: float = 0.0) -> float:
    """Fraction of all units (ties included in the denominator) whose delta is positive."""
    if len(deltas) == 0:
        raise ValueError("no deltas")
    return _split_signs(deltas, tie_tolerance)[0] / len(deltas)


def sign_test(deltas: Sequence[float], tie_tolerance: float = 0.0) -> SignTest:
    """Exact two-sided sign test: does adaptation help more units than it hurts?"""
    helped, hurt, tied = _split_signs(deltas, tie_tolerance)
    n = helped + hurt
    tail = sum(math.comb(n, i) for i in range(min(helped, hurt) + 1))
    p_value = min(1.0, 2 * tail / 2**n)
    return SignTest(helped, hurt, tied, p_value)


def summarize_deltas(
    deltas_by_persona: Mapping[str, float],
    k: int = 5,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    tie_tolerance: float = 0.0,
) -> DeltaSummary:
    """Mean delta with CI, sign test, share helped, and the k most helped and most hurt personas."""
    if not deltas_by_persona:
        raise ValueError("no personas to summarize")
    items = deltas_by_persona.items()
    deltas = list(deltas_by_persona.values())
    return DeltaSummary(
        n_personas=len(deltas),
        mean=paired_bootstrap_mean_delta(deltas, n_resamples, confidence, seed),
        sign_test=sign_test(deltas, tie_tolerance),
        share_helped=share_helped(deltas, tie_tolerance),
        top=sorted(items, key=lambda item: (-item[1], item[0]))[:k],
        bottom=sorted(items, key=lambda item: (item[1], item[0]))[:k],
    )


def distribution_summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, median and 90th percentile: the shape of a per-turn distribution in three numbers."""
    if len(values) == 0:
        raise ValueError("no values to summarize")
    array = np.asarray(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "p90": float(np.quantile(array, 0.9)),
    }
