"""The preference probe: trigger phrasing, recall scoring, and `probe` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.data.schema import NUMERIC_PARAMS, Triggers
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.probe import (
    PROBE_FILE,
    PROBE_MIN_NEW_TOKENS,
    PROBE_PREDICTIONS,
    load_routines,
    persona_intervals,
    probe_prompt,
    trigger_sentence,
)
from adaptcommand.evaluation.probe_scoring import (
    VALUE_TOLERANCES,
    RecallScores,
    score_recall,
    value_matches,
)
from adaptcommand.evaluation.runs import Scope
from adaptcommand.report.run_results import load_run
from test_evaluation_adapters import save_random_adapters


@pytest.mark.parametrize(("triggers", "sentence"), [
    ({"time_of_day": "evening", "day_of_week": "weekday", "sun_phase": "after_sunset",
      "weather": "rainy", "outdoor_temp": "cold"},
     "It's a rainy, cold weekday evening after sunset."),
    ({"time_of_day": "evening"}, "It's evening."),
    ({"time_of_day": "afternoon", "sun_phase": "daylight"}, "It's afternoon in daylight."),
    ({"day_of_week": "weekday", "time_of_day": "evening"}, "It's a weekday evening."),
    ({"weather": "sunny"}, "It's a sunny day."),
    ({"outdoor_temp": "very cold", "day_of_week": "weekend"}, "It's a very cold weekend."),
    ({"sun_phase": "daylight"}, "It's daytime."),
    ({"sun_phase": "before_sunrise"}, "It's before sunrise."),
    ({}, ""),
])
def test_trigger_sentence_names_only_the_set_triggers(triggers: dict, sentence: str) -> None:
    assert trigger_sentence(Triggers(**triggers)) == sentence


def test_probe_prompt_adds_the_request_and_never_a_value() -> None:
    assert probe_prompt(Triggers()) == "Set things up the way I like."
    assert probe_prompt(Triggers(weather="snowy")) == (
        "It's a snowy day. Set things up the way I like.")


def test_every_numeric_parameter_has_a_tolerance() -> None:
    assert set(VALUE_TOLERANCES) == NUMERIC_PARAMS


@pytest.mark.parametrize(("device", "param", "predicted", "expected", "matches"), [
    ("ac", "temperature", 23, 22, True),  # +-1 degree: at the boundary
    ("ac", "temperature", 20, 22, False),
    ("ac", "fan_speed", 3, 2, True),
    ("ac", "fan_speed", 0, 2, False),
    ("lights", "brightness", 55, 50, True),  # +-5 on 0..100: at the boundary
    ("lights", "brightness", 44, 50, False),
    ("speaker", "volume", 30.0, 35, True),
    ("lights", "color", "warm", "warm", True),
    ("lights", "color", "cool", "warm", False),
    ("security", "armed", True, True, True),
    ("security", "armed", 1, True, False),  # a number is not a boolean
])
def test_value_matches_applies_the_tolerance_table(
    device: str, param: str, predicted: object, expected: object, matches: bool
) -> None:
    assert value_matches(device, param, predicted, expected) is matches


def test_recall_scores_on_a_hand_computed_case() -> None:
    routine = {"ac": {"temperature": 22, "mode": "cool", "fan_speed": 2},
               "lights": {"brightness": 50}}
    # ac recalled (temperature within 1, wrong mode, no fan speed), lights missing, tv extra
    reply = {"ac": {"temperature": 23, "mode": "heat"}, "tv": {"volume": 30}}
    metrics = score_recall(reply, routine).metrics()
    assert metrics == {"device_precision": 0.5, "device_recall": 0.5, "device_f1": 0.5,
                       "param_recall": 0.5, "value_accuracy": 0.25}
    # a device named without values counts for the device only
    assert score_recall({"lights": {}}, {"lights": {"brightness": 50}}).metrics() == {
        "device_precision": 1.0, "device_recall": 1.0, "device_f1": 1.0,
        "param_recall": 0.0, "value_accuracy": 0.0}
    # nothing recalled: precision undefined, the rest zero
    empty = score_recall({}, routine).metrics()
    assert empty["device_precision"] is None and empty["value_accuracy"] == 0.0


def test_pooled_scores_are_micro_averages() -> None:
    exact = score_recall({"lights": {"brightness": 50}}, {"lights": {"brightness": 50}})
    half = score_recall({"ac": {"temperature": 22}}, {"ac": {"temperature": 22, "mode": "cool"}})
    pooled = exact + half
    assert (pooled.routines, pooled.params, pooled.correct) == (2, 3, 2)
    assert pooled.metrics()["value_accuracy"] == pytest.approx(2 / 3)  # not the mean of 1, 1/2


def test_persona_intervals_bracket_the_pooled_estimate() -> None:
    three = {
        "a": score_recall({"lights": {"brightness": 50}}, {"lights": {"brightness": 50}}),
        "b": score_recall({}, {"ac": {"temperature": 22, "mode": "cool"}}),
        "c": score_recall({"ac": {"temperature": 30}}, {"ac": {"temperature": 22}}),
    }
    by_persona = {f"{name}{i}": score for i in range(4) for name, score in three.items()}
    settings = EvalConfig.model_validate({"evaluation": {"bootstrap_resamples": 200}})
    intervals = persona_intervals(by_persona, settings)
    value = intervals["value_accuracy"]
    assert value["estimate"] == pytest.approx(1 / 4)
    assert 0.0 <= value["low"] <= value["estimate"] <= value["high"] <= 1.0
    assert (value["n_users"], value["too_few_users"]) == (12, False)
    assert intervals == persona_intervals(by_persona, settings)  # seeded
    # three personas: the estimate, no interval, and why
    assert persona_intervals(three, settings)["value_accuracy"] == {
        "estimate": pytest.approx(1 / 4), "low": None, "high": None, "n_users": 3,
        "too_few_users": True}
    assert persona_intervals({"a": RecallScores()}, settings)["value_accuracy"] == {
        "estimate": None, "low": None, "high": None, "n_users": 1, "too_few_users": True}


def test_data_without_routines_is_refused(real_sample: Path) -> None:
    with pytest.raises(DataError, match="no routines") as error:
        load_routines(Scope(dialogues=real_sample))
    assert error.value.field == "routines" and error.value.path == str(real_sample)


COMMON = ["--model", "tiny-random", "--set", "generation.max_new_tokens=6",
          "--set", "evaluation.bootstrap_resamples=20"]


def invoke(args: list[str]):
    return CliRunner().invoke(app, [*args, *COMMON])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_probe_cli_writes_beside_the_eval_run(synthetic_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert invoke(["baseline", "--data", str(synthetic_data), "--out", str(run)]).exit_code == 0
    eval_files = {p.name: p.read_bytes() for p in run.iterdir()}
    result = invoke(["probe", "--data", str(synthetic_data), "--out", str(run),
                     "--set", "generation.do_sample=true", "--set", "generation.max_new_tokens=8"])
    assert result.exit_code == 0, result.output

    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name in eval_files} == eval_files
    probe = json.loads((run / PROBE_FILE).read_text())
    routines = load_routines(Scope(data=synthetic_data))
    assert probe["arm"] == "baseline" and probe["config"]["generation"]["do_sample"] is False
    # a turn's budget would cut a routine stated in full
    assert probe["config"]["generation"]["max_new_tokens"] == PROBE_MIN_NEW_TOKENS
    assert probe["counts"]["routines"] == sum(len(r) for r in routines.values())
    assert set(probe["per_persona"]) == set(routines)
    records = read_jsonl(run / PROBE_PREDICTIONS)
    assert len(records) == probe["counts"]["routines"]
    first = records[0]
    assert first["prompt"] == probe_prompt(routines["persona_000"][0].triggers)
    assert first["score"] == score_recall(first["reply_actions"],
                                          first["routine_actions"]).to_dict()
    assert load_run(run).probe.metrics == probe["metrics"]  # the report reads it

    stamp = (run / PROBE_FILE).stat().st_mtime_ns
    assert invoke(["probe", "--data", str(synthetic_data), "--out", str(run)]).exit_code == 0
    assert (run / PROBE_FILE).stat().st_mtime_ns == stamp  # finished and identical: not redone
    other = invoke(["probe", "--data", str(synthetic_data), "--out", str(run), "--arm", "x"])
    assert isinstance(other.exception, AdaptCommandError)
    assert "holds the evaluation of arm 'baseline'" in str(other.exception)


def test_another_request_wording_is_asked_and_recorded(synthetic_data: Path,
                                                      tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = invoke(["probe", "--data", str(synthetic_data), "--out", str(run),
                     "--request", "Could you get the house ready for me?"])
    assert result.exit_code == 0, result.output
    first = read_jsonl(run / PROBE_PREDICTIONS)[0]
    assert first["prompt"].endswith(" Could you get the house ready for me?")
    assert json.loads((run / PROBE_FILE).read_text())["request"] == \
        "Could you get the house ready for me?"


def test_probe_cli_routes_adapters_per_persona(synthetic_data: Path, tmp_path: Path) -> None:
    save_random_adapters(tmp_path / "adapters", ["persona_000", "unified"])
    scope = ["--data", str(synthetic_data), "--personas", "persona_000,persona_001"]
    base = invoke(["probe", *scope, "--out", str(tmp_path / "base")])
    adapted = invoke(["probe", *scope, "--adapters", str(tmp_path / "adapters"),
                      "--out", str(tmp_path / "adapted")])
    assert base.exit_code == 0 and adapted.exit_code == 0, adapted.output

    def replies(run: str) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for record in read_jsonl(tmp_path / run / PROBE_PREDICTIONS):
            grouped.setdefault(record["persona_id"], []).append(record["reply"])
        return grouped

    base_replies, adapted_replies = replies("base"), replies("adapted")
    assert set(adapted_replies) == {"persona_000", "persona_001"}
    assert adapted_replies["persona_000"] != base_replies["persona_000"]  # own adapter
    assert adapted_replies["persona_001"] != base_replies["persona_001"]  # unified fallback
    probe = json.loads((tmp_path / "adapted" / PROBE_FILE).read_text())
    assert probe["arm"] == "adapters" and probe["adapters"] == str(tmp_path / "adapters")
