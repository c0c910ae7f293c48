"""Uncertainty for evaluation numbers: cluster bootstrap, paired deltas and the sign test.

Turns within a session (and sessions within a persona) are correlated, so intervals come from
resampling whole clusters, never single turns. Each cluster is reduced to a row of sums (for a
mean: value sum and turn count; for micro F1: TP, FP, FN), and a statistic maps summed columns
to a number. One design serves means and ratio metrics alike, and a resample is a matrix product.

The question every number answers is about users, so users are the unit of inference: absolute
metrics use a two-level bootstrap (users, then sessions within each drawn user), paired deltas
resample users. With fewer than `MIN_USERS` users no interval, p-value or verdict is given: a
percentile bootstrap over 4 users has 35 distinct resamples and its "95%" covers far less.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps column sums of shape (..., k) to values of shape (...); must broadcast over leading axes."""

MIN_USERS = 10
"""Fewest users for which an interval, a p-value or a verdict is reported."""


def too_few_users(n_users: int, min_users: int = MIN_USERS) -> bool:
    """Whether `n_users` is below the bar for any interval or verdict."""
    return n_users < min_users


def too_few_users_text(n_users: int) -> str:
    """What every report prints in place of an interval's verdict below `MIN_USERS` users."""
    return f"too few users to decide: {n_users}"


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval.

    `n_users` is set when users are the resampled unit (or the outer one); below `MIN_USERS` of
    them `low` and `high` are None and `too_few_users` is True.
    """

    estimate: float
    low: float | None
    high: float | None
    n_clusters: int
    n_users: int | None = None
    too_few_users: bool = False


@dataclass(frozen=True)
class SignTest:
    """Counts of helped/hurt/tied units and the exact two-sided binomial p-value (ties dropped)."""

    helped: int
    hurt: int
    tied: int
    p_value: float | None  # None: fewer units than a decision needs (`summarize_deltas`)


@dataclass(frozen=True)
class DeltaSummary:
    """How per-persona deltas (adapted minus baseline) are distributed, for the report."""

    n_personas: int
    mean: Interval
    too_few_users: bool
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


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _percentiles(resampled: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` range of the resampled statistic (undefined resamples ignored)."""
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(resampled, [alpha, 1 - alpha])
    return float(low), float(high)


def _as_rows(sums: ArrayLike) -> np.ndarray:
    array = np.asarray(sums, dtype=float)
    return array[:, None] if array.ndim == 1 else array


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
    sums = _as_rows(cluster_sums)
    if sums.ndim != 2 or sums.shape[0] == 0:
        raise ValueError("cluster_sums must be a non-empty (n_clusters, k) array")
    _check_confidence(confidence)
    n_clusters = sums.shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_resamples)
    low, high = _percentiles(statistic(draws @ sums), confidence)
    estimate = statistic(sums.sum(axis=0))
    return Interval(float(estimate), low, high, n_clusters)


def user_bootstrap_ci(
    user_sums: ArrayLike,
    statistic: Statistic,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_users: int = MIN_USERS,
) -> Interval:
    """`bootstrap_ci` with one row per user; no interval below `min_users` users."""
    sums = _as_rows(user_sums)
    n_users = sums.shape[0] if sums.ndim == 2 else 0
    if n_users and too_few_users(n_users, min_users):
        _check_confidence(confidence)
        return _withheld(float(statistic(sums.sum(axis=0))), n_users, n_users)
    interval = bootstrap_ci(sums, statistic, n_resamples, confidence, seed)
    return replace(interval, n_users=n_users)


def two_level_bootstrap_ci(
    sums_by_user: Sequence[ArrayLike],
    statistic: Statistic,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_users: int = MIN_USERS,
) -> Interval:
    """Percentile interval of `statistic` from a two-level bootstrap: draw users with
    replacement, then, for every drawn copy of a user, that user's sessions with replacement.

    `sums_by_user[u]` holds one row of sums per session of user u. Both levels matter: user
    resampling alone ignores that a user's few sessions only estimate that user; session
    resampling alone treats one user's sessions as if they came from different users. The
    session draws of c copies of a user are together one multinomial of c x n_sessions draws,
    so a resample is still a sum of matrix products. `n_clusters` counts users.
    """
    blocks = [_as_rows(block) for block in sums_by_user]
    if not blocks or any(b.ndim != 2 or b.shape[0] == 0 for b in blocks):
        raise ValueError("sums_by_user must hold, per user, a non-empty (n_sessions, k) array")
    if len({b.shape[1] for b in blocks}) != 1:
        raise ValueError("every user's session sums must have the same columns")
    _check_confidence(confidence)
    n_users = len(blocks)
    estimate = float(statistic(np.concatenate(blocks).sum(axis=0)))
    if too_few_users(n_users, min_users):
        return _withheld(estimate, n_users, n_users)
    rng = np.random.default_rng(seed)
    user_draws = rng.multinomial(n_users, np.full(n_users, 1 / n_users), size=n_resamples)
    pooled = np.zeros((n_resamples, blocks[0].shape[1]))
    for user, block in enumerate(blocks):
        n_sessions = block.shape[0]
        session_draws = rng.multinomial(user_draws[:, user] * n_sessions,
                                        np.full(n_sessions, 1 / n_sessions))
        pooled += session_draws @ block
    low, high = _percentiles(statistic(pooled), confidence)
    return Interval(estimate, low, high, n_users, n_users)


def _withheld(estimate: float, n_clusters: int, n_users: int) -> Interval:
    return Interval(estimate, None, None, n_clusters, n_users, too_few_users=True)


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
    min_users: int = MIN_USERS,
) -> Interval:
    """Interval of the mean paired delta, each user's delta being its own cluster; none below
    `min_users` users."""
    rows = sum_count_rows([[delta] for delta in deltas])
    return user_bootstrap_ci(rows, mean_of_sums, n_resamples, confidence, seed, min_users)


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
    min_users: int = MIN_USERS,
) -> DeltaSummary:
    """Mean delta with CI, sign test, share helped, and the k most helped and most hurt personas.

    Below `min_users` personas the interval and the sign test's p-value are None (the counts
    of helped, hurt and tied personas stay: they describe, they do not decide)."""
    if not deltas_by_persona:
        raise ValueError("no personas to summarize")
    items = deltas_by_persona.items()
    deltas = list(deltas_by_persona.values())
    few = too_few_users(len(deltas), min_users)
    signs = sign_test(deltas, tie_tolerance)
    return DeltaSummary(
        n_personas=len(deltas),
        mean=paired_bootstrap_mean_delta(deltas, n_resamples, confidence, seed, min_users),
        too_few_users=few,
        sign_test=replace(signs, p_value=None) if few else signs,
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
