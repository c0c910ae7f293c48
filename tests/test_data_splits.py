"""Per-persona temporal splits: sizes, rounding, cold-start profile/evaluated sessions, and the
validation checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adaptcommand.data.schema import CleanDialogue, Message
from adaptcommand.data.splits import SplitConfig, compute_splits, split_sizes, split_stats
from adaptcommand.data.validation import validate_splits

DEFAULT = SplitConfig()


def _dialogues(sessions_per_persona: dict[str, int]) -> list[CleanDialogue]:
    """Each persona's sessions contiguous, in time order; session i has i % 3 + 1 user turns."""
    return [
        CleanDialogue(
            persona_id=pid,
            session_id=i,
            messages=[Message(role=role, text="x")
                      for _ in range(i % 3 + 1) for role in ("user", "assistant")],
        )
        for pid, n in sessions_per_persona.items()
        for i in range(n)
    ]


def _errors(checks) -> dict[str, list[str]]:
    return {check.name: check.errors for check in checks if check.errors}


@pytest.mark.parametrize(
    ("n", "sizes"),
    [(50, (30, 10, 10)), (10, (6, 2, 2)), (7, (4, 2, 1)), (5, (3, 1, 1)), (4, (2, 1, 1)),
     (3, (1, 1, 1)), (2, (1, 0, 1)), (1, (1, 0, 0)), (0, (0, 0, 0))],
)
def test_split_sizes_round_half_up_on_cumulative_ratios(n: int, sizes: tuple[int, ...]) -> None:
    assert split_sizes(n, DEFAULT) == sizes


@pytest.mark.parametrize(
    "config",
    [DEFAULT, SplitConfig(train_ratio=0.8, val_ratio=0.1), SplitConfig(train_ratio=0.1,
                                                                     val_ratio=0.85)],
)
def test_every_persona_with_three_sessions_gets_every_split(config: SplitConfig) -> None:
    for n in range(3, 120):
        train, val, test = split_sizes(n, config)
        assert train + val + test == n
        assert min(train, val, test) >= 1


def test_full_dataset_shape_gives_6000_2000_2000() -> None:
    dialogues = _dialogues({f"persona_{u:03d}": 50 for u in range(200)})
    splits = compute_splits(dialogues, DEFAULT)
    sizes = {name: sum(len(e[name]) for e in splits.values()) for name in ("train", "val", "test")}
    assert sizes == {"train": 6000, "val": 2000, "test": 2000}
    assert not _errors(validate_splits(dialogues, splits, DEFAULT))


def test_splits_are_time_ordered() -> None:
    dialogues = _dialogues({"a": 50, "b": 12})
    splits = compute_splits(dialogues, DEFAULT)
    assert splits["a"]["train"] == list(range(30))
    assert splits["a"]["val"] == list(range(30, 40))
    assert splits["a"]["test"] == list(range(40, 50))
    assert splits["b"] == {"train": list(range(50, 57)), "val": [57, 58, 59], "test": [60, 61]}


@pytest.mark.parametrize(("profile", "evaluated"), [(1, [1, 2, 3]), (3, [3, 4, 5]), (5, [5])])
def test_cold_start_profile_sessions_are_configurable(profile: int, evaluated: list[int]) -> None:
    config = SplitConfig(cold_start_personas=1, cold_start_profile_sessions=profile,
                         cold_start_sessions=3)
    splits = compute_splits(_dialogues({"a": 6, "b": 6}), config)
    (entry,) = [e for e in splits.values() if "cold_start" in e]
    offset = entry["cold_start_profile"][0]
    assert [i - offset for i in entry["cold_start_profile"]] == list(range(profile))
    assert [i - offset for i in entry["cold_start"]] == evaluated


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"train_ratio": 0.7, "val_ratio": 0.3}, "val_ratio"), ({"train_ratio": 0}, "train_ratio"),
     ({"cold_start_profile_sessions": 0}, "cold_start_profile_sessions"),
     ({"online_size": 10}, "online_size")],
)
def test_split_config_rejects_impossible_ratios(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        SplitConfig(**kwargs)
    assert info.value.errors()[0]["loc"] == (field,)


def test_split_stats_counts_sessions_and_turns() -> None:
    dialogues = _dialogues({"a": 5, "b": 10})
    stats = split_stats(dialogues, compute_splits(dialogues, DEFAULT), DEFAULT)
    assert stats["sessions"] == 15 and stats["personas"] == 2
    assert stats["train"]["sessions"] == 9
    assert stats["train"]["per_persona"] == {"min": 3, "max": 6, "mean": 4.5}
    # a: sessions 0-2 (1+2+3 pairs); b: sessions 0-5 (1+2+3+1+2+3 pairs)
    assert stats["train"]["assistant_turns"] == 18
    assert stats["train"]["turns"] == 36
    assert stats["test"]["per_persona"] == {"min": 1, "max": 2, "mean": 1.5}


def test_validation_catches_tampered_splits() -> None:
    dialogues = _dialogues({"a": 10, "b": 10})
    splits = compute_splits(dialogues, DEFAULT)
    splits["a"]["val"] = [5, 7]  # 5 is also train; 6 is now in no split
    splits["b"]["test"] = [18, 19, 2]  # 2 belongs to persona a and is a's train
    errors = _errors(validate_splits(dialogues, splits, DEFAULT))
    assert errors["indices_valid"] == ["b.test: index 2 belongs to a",
                                       "1 sessions in no split, first index 6"]
    assert errors["no_overlap"] == ["index 5 in both a.train and a.val",
                                    "index 2 in both a.train and b.test"]
    assert errors["temporal_order"] == ["a: a train session is not before every val session",
                                        "b: a val session is not before every test session"]


def test_thin_personas_warn_but_missing_splits_of_full_personas_fail() -> None:
    dialogues = _dialogues({"thin": 2, "full": 10})
    splits = compute_splits(dialogues, DEFAULT)
    checks = {check.name: check for check in validate_splits(dialogues, splits, DEFAULT)}
    assert checks["coverage"].passed
    assert "1 personas have fewer than 3 sessions" in checks["coverage"].warnings[0]
    splits["full"]["train"] += splits["full"]["val"]
    splits["full"]["val"] = []
    checks = {check.name: check for check in validate_splits(dialogues, splits, DEFAULT)}
    assert checks["coverage"].errors == ["full: no val session (10 in all)"]
    assert checks["balance"].errors == ["full.train: 8 sessions, expected about 6.0",
                                        "full.val: 0 sessions, expected about 2.0"]
