"""Action metrics on hand-computed cases: counts, ratio conventions, pooling, gold-file loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptcommand.errors import DataError
from adaptcommand.evaluation.action_metrics import (
    ActionScores,
    Counts,
    score_labelled_jsonl,
    score_turn,
    score_turns,
)

PRED = {"tv": {"volume": 20, "input_source": "Netflix"}, "lights": {}}
REF = {"tv": {"volume": 25, "input_source": "Netflix"}, "ac": {"temperature": 22}}


def _counts(c: Counts) -> tuple[int, int, int]:
    return c.tp, c.fp, c.fn


def test_one_turn_counts_every_level() -> None:
    s = score_turn(PRED, REF)
    assert s.turns == 1
    assert _counts(s.device) == (1, 1, 1)  # tv right, lights extra, ac missed
    assert {d: _counts(c) for d, c in s.per_device.items()} == {
        "ac": (0, 0, 1), "lights": (0, 1, 0), "tv": (1, 0, 0)}
    assert _counts(s.param) == (1, 1, 2)  # Netflix right; volume 20 wrong; volume 25, temp missed
    assert _counts(s.numeric) == (0, 1, 2)
    assert _counts(s.categorical) == (1, 0, 0)
    assert (s.abs_error_sum, s.abs_error_count, s.mae) == (5.0, 1, 5.0)  # |20 - 25|


def test_ratios_and_their_conventions_without_denominators() -> None:
    s = score_turn(PRED, REF)
    assert (s.device.precision, s.device.recall, s.device.f1) == (0.5, 0.5, 0.5)
    assert s.param.precision == 0.5
    assert s.param.recall == pytest.approx(1 / 3)
    assert s.param.f1 == pytest.approx(2 / (2 + 1 + 2))
    assert (s.numeric.precision, s.numeric.recall, s.numeric.f1) == (0.0, 0.0, 0.0)

    nothing = score_turn({}, {})
    assert (nothing.device.precision, nothing.device.recall, nothing.device.f1) == (None,) * 3
    assert nothing.mae is None
    missed = score_turn({}, {"lights": {"brightness": 50}})
    assert (missed.device.precision, missed.device.recall, missed.device.f1) == (None, 0.0, 0.0)
    invented = score_turn({"tv": {}}, {})
    assert (invented.device.precision, invented.device.recall, invented.device.f1) == (
        0.0, None, 0.0)


def test_booleans_are_categorical_and_never_enter_the_mae() -> None:
    s = score_turn({"security": {"armed": True, "alarm_volume": 60}},
                   {"security": {"armed": False, "alarm_volume": 70}})
    assert _counts(s.categorical) == (0, 1, 1)
    assert _counts(s.numeric) == (0, 1, 1)
    assert (s.abs_error_count, s.mae) == (1, 10.0)


def test_pooling_is_addition_of_counts() -> None:
    second = score_turn({"lights": {"brightness": 40}}, {"lights": {"brightness": 50}})
    pooled = score_turns([(PRED, REF), ({"lights": {"brightness": 40}},
                                        {"lights": {"brightness": 50}}), ({}, {})])
    assert pooled == score_turn(PRED, REF) + second + score_turn({}, {})
    assert pooled.turns == 3
    assert _counts(pooled.device) == (2, 1, 1)
    assert _counts(pooled.per_device["lights"]) == (1, 1, 0)
    assert pooled.mae == pytest.approx((5 + 10) / 2)
    assert sum([second, second], ActionScores()).device.tp == 2


def test_to_dict_is_json_ready() -> None:
    out = score_turns([(PRED, REF), ({}, {})]).to_dict()
    assert json.loads(json.dumps(out)) == out
    assert out["turns"] == 2
    assert out["device"] == {"tp": 1, "fp": 1, "fn": 1, "precision": 0.5, "recall": 0.5,
                             "f1": 0.5}
    assert out["categorical"]["f1"] == 1.0
    assert out["per_device"]["ac"]["precision"] is None
    assert (out["numeric_mae"], out["numeric_mae_count"]) == (5.0, 1)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_labelled_file_is_scored_overall_and_per_role(tmp_path: Path) -> None:
    gold = _write(tmp_path / "gold.jsonl", [
        {"role": "user", "text": "a", "actions": {"tv": {"volume": 20}}},
        {"role": "assistant", "text": "b", "actions": {}},
    ])
    predictions = {"a": {"tv": {"volume": 20}}, "b": {"lights": {}}}
    scores = score_labelled_jsonl(gold, predictions.__getitem__)
    assert set(scores) == {"all", "user", "assistant"}
    assert _counts(scores["all"].device) == (1, 1, 0)
    assert _counts(scores["user"].param) == (1, 0, 0)
    assert _counts(scores["assistant"].device) == (0, 1, 0)


def test_labelled_file_with_an_out_of_schema_label_fails_at_its_line(tmp_path: Path) -> None:
    gold = _write(tmp_path / "gold.jsonl", [
        {"role": "user", "text": "a", "actions": {}},
        {"role": "user", "text": "b", "actions": {"ac": {"temperature": 40}}},
    ])
    with pytest.raises(DataError) as info:
        score_labelled_jsonl(gold, lambda text: {})
    assert (info.value.line, info.value.field) == (2, "actions.ac.temperature")
