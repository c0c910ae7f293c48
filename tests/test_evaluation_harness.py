"""The evaluation harness: turn selection, exact scores on known predictions, resume, CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.evaluation.config import EvalConfig, ScopeSettings
from adaptcommand.evaluation.harness import PREDICTIONS, run_evaluation
from adaptcommand.evaluation.scoring import score_records
from adaptcommand.evaluation.turns import Turn, iter_turns, select_turns


def dialogue(persona: str, session: int, n_pairs: int) -> CleanDialogue:
    messages = []
    for i in range(n_pairs):
        messages.append({"role": "user", "text": f"Set the lights to {10 + i} percent."})
        messages.append({"role": "assistant", "text": f"Setting the lights to {10 + i}% now."})
    return CleanDialogue(persona_id=persona, session_id=session, messages=messages)


def test_iter_turns_skips_leading_assistant_turns_and_keeps_full_context() -> None:
    turns = iter_turns([dialogue("p", 7, 4)], skip_assistant_turns=2)
    assert [t.turn_index for t in turns] == [5, 7]
    assert len(turns[0].context) == 5
    assert turns[0].reference == "Setting the lights to 12% now."
    assert turns[0].key == ("p", 7, 5)


def test_select_turns_filters_personas_and_caps_examples() -> None:
    by_persona = {"a": [dialogue("a", 0, 3)], "b": [dialogue("b", 0, 3)]}
    assert {t.persona_id for t in select_turns(by_persona, 0, personas=["b"])} == {"b"}
    assert len(select_turns(by_persona, 0, max_examples=4)) == 4
    with pytest.raises(AdaptCommandError, match="unknown persona"):
        select_turns(by_persona, 0, personas=["zz"])


def record(pid: str, session: int, prediction: str, reference: str, pred_actions, ref_actions):
    return {"persona_id": pid, "session_id": session, "turn_index": 1, "prediction": prediction,
            "reference": reference, "prediction_actions": pred_actions,
            "reference_actions": ref_actions}


def test_scores_match_hand_computed_values() -> None:
    records = [
        # identical text; devices agree, one of two values right
        record("a", 0, "lights to 40", "lights to 40",
               {"lights": {"brightness": 40}, "ac": {"temperature": 20}},
               {"lights": {"brightness": 40}, "ac": {"temperature": 22}}),
        # predicted a device the reference does not have
        record("b", 1, "tv on", "lights to 40", {"tv": {}}, {"lights": {"brightness": 40}}),
    ]
    scores = score_records(records, ScopeSettings(bootstrap_resamples=50))
    metrics = scores["metrics"]
    # devices: TP = lights, ac (turn 1); FP = tv, FN = lights (turn 2)
    assert metrics["device_precision"] == pytest.approx(2 / 3)
    assert metrics["device_recall"] == pytest.approx(2 / 3)
    # triples: TP = brightness 40; FP = temperature 20; FN = temperature 22, brightness 40
    assert metrics["param_precision"] == pytest.approx(1 / 2)
    assert metrics["param_recall"] == pytest.approx(1 / 3)
    assert metrics["numeric_mae"] == pytest.approx(1.0)  # |40-40| and |20-22|
    assert scores["per_persona"]["a"]["rougeL"] == pytest.approx(1.0)
    assert scores["per_persona"]["a"]["embedding_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert scores["per_persona"]["b"]["device_f1"] == 0.0
    interval = scores["confidence_intervals"]["device_precision"]
    assert interval["estimate"] == pytest.approx(2 / 3)
    # two personas: no interval, and the JSON says why
    assert (interval["low"], interval["high"], interval["n_users"]) == (None, None, 2)
    assert interval["too_few_users"] is True
    assert scores["counts"] == {"turns": 2, "sessions": 2, "personas": 2}


class CountingPredictor:
    """Echoes the last user message, streaming each reply; after `fail_after` replies it
    crashes mid-call, as a kill during generation would."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.seen: list[tuple] = []
        self.fail_after = fail_after

    def __call__(self, turns: Sequence[Turn], on_reply=None) -> list[str]:
        replies = []
        for index, turn in enumerate(turns):
            if len(self.seen) == self.fail_after:
                raise KeyboardInterrupt
            self.seen.append(turn.key)
            replies.append(turn.context[-1].text)
            if on_reply is not None:
                on_reply(index, replies[-1])
        return replies


def small_config() -> EvalConfig:
    return EvalConfig.model_validate({"generation": {"batch_size": 1},
                                      "evaluation": {"bootstrap_resamples": 20,
                                                     "skip_assistant_turns": 0}})


def test_interrupted_run_resumes_with_only_the_missing_turns(tmp_path: Path) -> None:
    turns = select_turns({"a": [dialogue("a", s, 3) for s in range(3)]}, 0)  # 9 turns, one call
    config = small_config()
    crashing = CountingPredictor(fail_after=4)  # replies stream out: the first 4 survive
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(turns, crashing, config, tmp_path, {"arm": "t"}, show_progress=False)
    assert len((tmp_path / PREDICTIONS).read_text().splitlines()) == 4

    resumed = CountingPredictor()
    results = run_evaluation(turns, resumed, config, tmp_path, {"arm": "t"}, show_progress=False)
    assert resumed.seen == [t.key for t in turns[4:]]
    lines = [json.loads(x) for x in (tmp_path / PREDICTIONS).read_text().splitlines()]
    assert [(r["session_id"], r["turn_index"]) for r in lines] == [t.key[1:] for t in turns]
    assert results["counts"]["turns"] == 9

    fresh_dir = tmp_path / "fresh"
    fresh = run_evaluation(turns, CountingPredictor(), config, fresh_dir, {"arm": "t"},
                           show_progress=False)
    assert fresh["metrics"] == results["metrics"]


def test_only_a_torn_last_prediction_line_is_tolerated(tmp_path: Path) -> None:
    turns = select_turns({"a": [dialogue("a", s, 2) for s in range(2)]}, 0)  # 4 turns
    config = small_config()
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(turns, CountingPredictor(fail_after=2), config, tmp_path, {"arm": "t"},
                       show_progress=False)
    path = tmp_path / PREDICTIONS
    good = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(good) + "\n" + good[0][:25], encoding="utf-8")  # killed mid-write
    resumed = CountingPredictor()
    run_evaluation(turns, resumed, config, tmp_path, {"arm": "t"}, show_progress=False)
    assert resumed.seen == [t.key for t in turns[2:]]  # the torn turn was dropped, not kept

    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], lines[1][:25], *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"predictions\.jsonl:2: malformed") as error:
        run_evaluation(turns, CountingPredictor(), config, tmp_path, {"arm": "t"},
                       show_progress=False)
    assert error.value.line == 2
    assert path.read_text(encoding="utf-8").splitlines()[1] == lines[1][:25]  # left as it was


def test_a_changed_config_is_refused_unless_forced(tmp_path: Path) -> None:
    turns = select_turns({"a": [dialogue("a", 0, 2)]}, 0)
    run_evaluation(turns, CountingPredictor(), small_config(), tmp_path, {"arm": "t"},
                   show_progress=False)
    other = small_config().model_copy(update={"prompt": small_config().prompt.model_copy(
        update={"max_context_messages": 2})})
    with pytest.raises(AdaptCommandError, match="different config"):
        run_evaluation(turns, CountingPredictor(), other, tmp_path, {"arm": "t"},
                       show_progress=False)
    predictor = CountingPredictor()
    run_evaluation(turns, predictor, other, tmp_path, {"arm": "t"}, force=True,
                   show_progress=False)
    assert len(predictor.seen) == len(turns)


def test_baseline_cli_end_to_end_on_the_real_sample(tmp_path: Path, real_sample: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "baseline", "--dialogues", str(real_sample), "--skip-assistant-turns", "0",
        "--model", "tiny-random", "--max-examples", "6", "--out", str(out),
        "--set", "generation.max_new_tokens=4", "--set", "evaluation.bootstrap_resamples=20",
    ])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["turns"] == 6
    assert results["config"]["model"]["name"] == "tiny-random"
    assert set(results["per_persona"]) == {"persona_000", "persona_002", "persona_004"}
    csv_lines = (out / "per_persona_summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("persona_id,n_turns,n_sessions,rouge1")
    assert len(csv_lines) == 4
    predictions = [json.loads(x) for x in (out / PREDICTIONS).read_text().splitlines()]
    assert predictions[0]["reference_actions"] == {"ac": {}} or predictions[0]["reference"]
    assert {"prediction", "prediction_actions", "reference_actions"} <= set(predictions[0])


def test_shipped_baseline_config_is_the_reference_default() -> None:
    shipped = json.loads((Path(__file__).parents[1] / "configs" / "baseline_v1.0.json").read_text())
    assert EvalConfig.model_validate(shipped) == EvalConfig()
