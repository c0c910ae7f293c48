"""Known-answer tests for the cluster bootstrap, paired deltas and the sign test."""

from __future__ import annotations

import numpy as np
import pytest

from adaptcommand.evaluation.stats import (
    MIN_USERS,
    bootstrap_ci,
    distribution_summary,
    mean_ci,
    mean_of_sums,
    micro_f1,
    paired_bootstrap_mean_delta,
    share_helped,
    sign_test,
    sum_count_rows,
    summarize_deltas,
    too_few_users_text,
    two_level_bootstrap_ci,
    user_bootstrap_ci,
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
    interval = paired_bootstrap_mean_delta(deltas, n_resamples=500, seed=0, min_users=5)
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


def _users(n_users: int, seed: int) -> list[np.ndarray]:
    """(sum, count) rows per session: user means spread N(0.6, 0.1), 2..8 sessions per user."""
    rng = np.random.default_rng(seed)
    users = []
    for _ in range(n_users):
        centre = rng.normal(0.6, 0.1)
        users.append(sum_count_rows(
            [list(rng.normal(centre, 0.2, rng.integers(1, 5))) for _ in range(rng.integers(2, 9))]
        ))
    return users


def test_min_users_is_ten() -> None:
    assert MIN_USERS == 10
    assert too_few_users_text(4) == "too few users to decide: 4"


def test_two_level_constant_data_gives_zero_width_interval() -> None:
    users = [sum_count_rows([[0.5, 0.5], [0.5]] * (u + 1)) for u in range(12)]
    interval = two_level_bootstrap_ci(users, mean_of_sums)
    assert interval.low == interval.estimate == interval.high == 0.5
    assert (interval.n_users, interval.n_clusters, interval.too_few_users) == (12, 12, False)


def test_two_level_estimate_pools_every_session() -> None:
    users = [sum_count_rows([[1.0, 1.0, 1.0]])] + [sum_count_rows([[0.0]])] * 9
    assert two_level_bootstrap_ci(users, mean_of_sums).estimate == pytest.approx(3 / 12)


def test_two_level_with_one_session_per_user_is_the_user_bootstrap() -> None:
    # the session level has nothing to resample, and the user draws come first from one seed
    rows = sum_count_rows([[v] for v in np.linspace(0.0, 1.0, 15)])
    two_level = two_level_bootstrap_ci([row[None, :] for row in rows], mean_of_sums, seed=3)
    one_level = user_bootstrap_ci(rows, mean_of_sums, seed=3)
    assert two_level == one_level
    assert bootstrap_ci(rows, mean_of_sums, seed=3).low == one_level.low


def test_second_level_resamples_sessions_within_users() -> None:
    # Ten identical users, each with one session scoring 0 and one scoring 1. Users alone: every
    # resample is the same, zero width. Two levels: a resample's mean is Binomial(20, 1/2) / 20,
    # whose 2.5% and 97.5% quantiles are 6/20 and 14/20 (P(X <= 5) = 0.021, P(X <= 6) = 0.058).
    user = sum_count_rows([[0.0], [1.0]])
    users = [user] * 10
    per_user = user_bootstrap_ci(np.array([u.sum(axis=0) for u in users]), mean_of_sums)
    assert per_user.low == per_user.high == 0.5
    interval = two_level_bootstrap_ci(users, mean_of_sums, n_resamples=20000, seed=0)
    assert (interval.low, interval.high) == (pytest.approx(0.3), pytest.approx(0.7))


def test_two_level_interval_is_wider_than_session_bootstrap_when_users_differ() -> None:
    users = _users(30, seed=5)
    sessions = np.concatenate(users)
    two = two_level_bootstrap_ci(users, mean_of_sums, seed=1)
    flat = bootstrap_ci(sessions, mean_of_sums, seed=1)
    assert two.estimate == pytest.approx(flat.estimate)
    assert (two.high - two.low) > 1.2 * (flat.high - flat.low)


def test_two_level_same_seed_same_interval_other_seed_differs() -> None:
    users = _users(12, seed=2)
    assert two_level_bootstrap_ci(users, mean_of_sums, seed=4) == \
        two_level_bootstrap_ci(users, mean_of_sums, seed=4)
    assert two_level_bootstrap_ci(users, mean_of_sums, seed=4) != \
        two_level_bootstrap_ci(users, mean_of_sums, seed=5)


def test_two_level_ratio_statistic() -> None:
    # every user pools TP 2, FP 1, FN 1 over its sessions: F1 = 4/6 in every resample
    users = [np.array([[2, 0, 1], [0, 1, 0]])] * 3 + [np.array([[2, 1, 1]])] * 8
    interval = two_level_bootstrap_ci(users, micro_f1, n_resamples=200)
    assert interval.estimate == pytest.approx(2 / 3)
    assert 0.5 < interval.low <= 2 / 3 <= interval.high < 0.8


@pytest.mark.parametrize("n_users", [1, 4, MIN_USERS - 1])
def test_below_min_users_no_interval_anywhere(n_users: int) -> None:
    users = _users(n_users, seed=6)
    two = two_level_bootstrap_ci(users, mean_of_sums)
    one = user_bootstrap_ci(np.array([u.sum(axis=0) for u in users]), mean_of_sums)
    deltas = {f"persona_{i:03d}": 0.1 * (i + 1) for i in range(n_users)}
    summary = summarize_deltas(deltas)
    for interval in (two, one, summary.mean, paired_bootstrap_mean_delta(list(deltas.values()))):
        assert (interval.low, interval.high) == (None, None)
        assert interval.too_few_users and interval.n_users == n_users
    assert two.estimate == pytest.approx(np.concatenate(users).sum(0)[0]
                                         / np.concatenate(users).sum(0)[1])
    assert summary.too_few_users and summary.sign_test.p_value is None
    assert summary.sign_test.helped == n_users  # counts describe; only the decision is withheld


def test_at_min_users_intervals_and_p_values_are_given() -> None:
    deltas = {f"persona_{i:03d}": 0.1 for i in range(MIN_USERS)}
    summary = summarize_deltas(deltas)
    assert not summary.too_few_users
    assert summary.mean.n_users == MIN_USERS
    assert (summary.mean.low, summary.mean.high) == (pytest.approx(0.1), pytest.approx(0.1))
    assert summary.sign_test.p_value == pytest.approx(2 / 1024)


def test_two_level_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        two_level_bootstrap_ci([], mean_of_sums)
    with pytest.raises(ValueError, match="non-empty"):
        two_level_bootstrap_ci([np.empty((0, 2))], mean_of_sums)
    with pytest.raises(ValueError, match="same columns"):
        two_level_bootstrap_ci([np.ones((1, 2)), np.ones((1, 3))], mean_of_sums)
