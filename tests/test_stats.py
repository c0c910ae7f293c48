"""Known-answer tests for the cluster bootstrap, paired deltas and the sign test."""

from __future__ import annotations

import numpy as np
import pytest

from adaptcommand.evaluation.stats import (
    bootstrap_ci,
    distribution_summary,
    mean_ci,
    micro_f1,
    paired_bootstrap_mean_delta,
    share_helped,
    sign_test,
    sum_count_rows,
    summarize_deltas,
)


def _sessions(n_sessions: int, seed: int) -> list[list[float]]:
    """Per-turn scores from N(0.6, 0.2), 1..6 turns per session."""
    rng = np.random.default_rng(seed)
    return [list(rng.normal(0.6, 0.2, rng.integers(1, 7))) for _ in range(n_sessions)]


def test_mean_ci_contains_true_mean_and_shrinks_with_more_data() -> None:
    small = mean_ci(_sessions(50, seed=1))
    large = mean_ci(_sessions(2000, seed=1))
    assert small.low < 0.6 < small.high
    assert large.low < 0.6 < large.high
    assert small.low <= small.estimate <= small.high
    assert (large.high - large.low) < (small.high - small.low) / 3
    assert (small.n_clusters, large.n_clusters) == (50, 2000)


def test_estimate_pools_items_not_cluster_means() -> None:
    interval = mean_ci([[1.0, 1.0, 1.0], [0.0]])
    assert interval.estimate == 0.75


def test_all_equal_values_give_zero_width_interval() -> None:
    interval = mean_ci([[0.5, 0.5], [0.5], [0.5, 0.5, 0.5]])
    assert interval.low == interval.estimate == interval.high == 0.5


def test_same_seed_same_interval_other_seed_differs() -> None:
    data = _sessions(100, seed=3)
    assert mean_ci(data, seed=7) == mean_ci(data, seed=7)
    assert mean_ci(data, seed=7) != mean_ci(data, seed=8)


def test_wider_confidence_gives_wider_interval() -> None:
    data = _sessions(200, seed=4)
    narrow, wide = mean_ci(data, confidence=0.5), mean_ci(data, confidence=0.99)
    assert wide.low < narrow.low and narrow.high < wide.high


def test_ratio_statistic_on_counts() -> None:
    # (TP, FP, FN) per session; pooled: TP 30, FP 10, FN 10 -> micro F1 = 60 / 80
    counts = np.array([[10, 0, 5], [10, 5, 0], [10, 5, 5]])
    interval = bootstrap_ci(counts, micro_f1, n_resamples=2000, seed=0)
    assert interval.estimate == pytest.approx(0.75)
    # every resample pools three of these rows, whose F1 lies between 20/30 and 20/25
    assert 2 / 3 <= interval.low <= 0.75 <= interval.high <= 0.8
    assert micro_f1(np.array([0.0, 0.0, 0.0])) == 1.0


def test_sum_count_rows() -> None:
    rows = sum_count_rows([[0.25, 0.75], [], [2.0]])
    assert rows.tolist() == [[1.0, 2.0], [0.0, 0.0], [2.0, 1.0]]


def test_bootstrap_rejects_empty_input_and_bad_confidence() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci(np.empty((0, 2)), micro_f1)
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([[1.0]], confidence=1.0)


def test_paired_delta_interval() -> None:
    deltas = [0.1, 0.2, 0.3, 0.2, 0.2]
    interval = paired_bootstrap_mean_delta(deltas, n_resamples=500, seed=0)
    assert interval.estimate == pytest.approx(0.2)
    assert 0.1 <= interval.low < 0.2 < interval.high <= 0.3
    assert interval.n_clusters == 5


@pytest.mark.parametrize(
    ("deltas", "expected"),
    [
        ([1.0] * 10, (10, 0, 0, 2 / 1024)),
        ([1.0] * 5 + [-1.0] * 5, (5, 5, 0, 1.0)),
        ([1.0] * 9 + [-1.0] + [0.0] * 3, (9, 1, 3, 22 / 1024)),
        ([0.0, 0.0], (0, 0, 2, 1.0)),
    ],
)
def test_sign_test_known_p_values(deltas: list[float], expected: tuple) -> None:
    result = sign_test(deltas)
    assert (result.helped, result.hurt, result.tied) == expected[:3]
    assert result.p_value == pytest.approx(expected[3])


def test_tie_tolerance_and_share_helped() -> None:
    deltas = [0.5, 0.001, -0.001, -0.5]
    assert sign_test(deltas, tie_tolerance=0.01).tied == 2
    assert share_helped(deltas) == 0.5
    assert share_helped(deltas, tie_tolerance=0.01) == 0.25


def test_summarize_deltas_ranks_personas() -> None:
    deltas = {"persona_000": 0.3, "persona_001": -0.2, "persona_002": 0.1, "persona_003": 0.1}
    summary = summarize_deltas(deltas, k=2, n_resamples=200)
    assert summary.n_personas == 4
    assert summary.mean.estimate == pytest.approx(0.075)
    assert summary.top == [("persona_000", 0.3), ("persona_002", 0.1)]
    assert summary.bottom == [("persona_001", -0.2), ("persona_002", 0.1)]
    assert (summary.sign_test.helped, summary.sign_test.hurt) == (3, 1)
    assert summary.share_helped == 0.75


def test_distribution_summary() -> None:
    assert distribution_summary([1.0, 2.0, 3.0, 4.0, 10.0]) == pytest.approx(
        {"mean": 4.0, "median": 3.0, "p90": 7.6}
    )
