"""Personal values: known answers for the triples only the user model can give, the implicit
request classifier, and the metrics results.json gets from the evaluation harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptcommand.data.schema import Message
from adaptcommand.evaluation.config import ScopeSettings
from adaptcommand.evaluation.personal_values import (
    PersonalTurn,
    is_implicit_request,
    personal_metrics,
    personal_turn,
    score_personal,
)
from adaptcommand.evaluation.scoring import score_records
from adaptcommand.report.build import build_report
from adaptcommand.report.compare import compare_runs
from adaptcommand.report.personal import personal_json, personal_markdown, personal_table
from adaptcommand.report.run_results import load_groups
from test_report import PERSONAS, SETTINGS, markdown_rows, write_run


def messages(*texts: str) -> list[Message]:
    """Alternating user/assistant messages, user first."""
    return [Message(role="user" if i % 2 == 0 else "assistant", text=t)
            for i, t in enumerate(texts)]


@pytest.mark.parametrize("text", [
    "The usual, please.", "You know how I like it.", "Same as always.",
    "Set the lights the way I like them.", "Do my rainy-evening setup.",
    "Put the AC on my usual settings", "Give me my favourite speaker settings.",
    "Set things up how I normally have them.", "Like last time, please.",
    "However I normally have it.", "Set up my usual cozy-evening routine",
])
def test_appeals_to_habit_are_implicit(text: str) -> None:
    assert is_implicit_request(text)


@pytest.mark.parametrize("text", [
    "Set the AC to 22 in heat mode.", "Can you dim the lights to 40% warm?", "Yes, please.",
    "Make it cozy in here.", "I prefer it around 50%.", "Turn off the TV.", "",
])
def test_requests_that_name_what_to_set_or_nothing_habitual_are_explicit(text: str) -> None:
    assert not is_implicit_request(text)


def test_personal_values_are_reference_triples_the_context_window_does_not_state() -> None:
    context = messages(
        "Set the AC to 22.",  # outside a 1-pair window: does not count as stated
        "Setting the AC to 22 degrees.",
        "And the lights the way I like them.",
        "Shall I set the lights to 40% brightness?",  # an offer states 40
        "Yes, please.",
    )
    turn = personal_turn(context, "Lights at 40% brightness, warm color, and the AC at 22 "
                         "degrees.", max_context_messages=2)
    assert turn.personal == {("lights", "color", "warm"), ("ac", "temperature", 22)}
    assert ("lights", "brightness", 40) in turn.stated
    assert turn.implicit is False  # the last user message is "Yes, please."
    wide = personal_turn(context, "Lights at 40% brightness, warm color, and the AC at 22 "
                         "degrees.", max_context_messages=5)
    assert wide.personal == {("lights", "color", "warm")}


def test_last_user_message_decides_the_group() -> None:
    turn = personal_turn(messages("Hi.", "Hello!", "My usual evening setup, please."),
                         "Setting the AC to 21 degrees in heat mode.", 5)
    assert turn.implicit and turn.group == "implicit"
    assert turn.personal == {("ac", "temperature", 21), ("ac", "mode", "heat")}


def test_score_counts_hits_misses_and_guesses_beyond_the_context() -> None:
    turn = PersonalTurn(personal=frozenset({("ac", "temperature", 21), ("ac", "mode", "heat")}),
                        stated=frozenset({("lights", "brightness", 40)}), implicit=True)
    predicted = {"ac": {"temperature": 21, "fan_speed": 2}, "lights": {"brightness": 40}}
    scores = score_personal(predicted, turn)
    # hit: temperature 21; guess not personal: fan 2; echo of the context (40) not counted
    assert (scores.counts.tp, scores.counts.fp, scores.counts.fn) == (1, 1, 1)
    assert scores.turns == 1 and scores.with_personal == 1


def test_metrics_split_by_group_with_known_answers() -> None:
    implicit = PersonalTurn(frozenset({("ac", "temperature", 21), ("ac", "mode", "heat")}),
                            frozenset(), True)
    explicit = PersonalTurn(frozenset({("tv", "volume", 30)}), frozenset(), False)
    nothing = PersonalTurn(frozenset(), frozenset({("lights", "color", "warm")}), False)
    scored = [(implicit, score_personal({"ac": {"temperature": 21, "mode": "heat"}}, implicit)),
              (explicit, score_personal({"tv": {"volume": 20}}, explicit)),
              (nothing, score_personal({"lights": {"color": "warm"}}, nothing))]
    metrics = personal_metrics(scored)
    assert metrics["personal_recall"] == pytest.approx(2 / 3)
    assert metrics["personal_precision"] == pytest.approx(2 / 3)  # tv volume 20 is a wrong guess
    assert metrics["personal_turn_share"] == pytest.approx(2 / 3)
    assert metrics["personal_recall_implicit"] == 1.0
    assert metrics["personal_recall_explicit"] == 0.0
    assert metrics["personal_precision_explicit"] == 0.0
    assert metrics["personal_turn_share_explicit"] == 0.5
    assert metrics["implicit_turn_share"] == pytest.approx(1 / 3)


def record(pid: str, session: int, prediction_actions: dict, reference: str) -> dict:
    return {"persona_id": pid, "session_id": session, "turn_index": 3, "prediction": "x",
            "reference": reference, "prediction_actions": prediction_actions,
            "reference_actions": {}}


def test_scoring_adds_personal_metrics_per_persona_with_session_intervals() -> None:
    usual = messages("Evening!", "Good evening.", "The usual, please.")
    explicit = messages("Hi.", "Hello.", "Set the TV volume to 30.")
    personal = {
        ("a", 0, 3): personal_turn(usual, "AC at 21 degrees, heat mode.", 5),
        ("b", 1, 3): personal_turn(explicit, "TV volume at 30 and brightness 70.", 5),
    }
    records = [record("a", 0, {"ac": {"temperature": 21, "mode": "cool"}}, "r"),
               record("b", 1, {"tv": {"volume": 30, "brightness": 70}}, "r")]
    scores = score_records(records, ScopeSettings(bootstrap_resamples=30), personal)
    # a: 21 right, cool instead of heat; b: brightness 70 right, volume 30 was stated
    assert scores["metrics"]["personal_recall_implicit"] == 0.5
    assert scores["metrics"]["personal_recall_explicit"] == 1.0
    assert scores["metrics"]["personal_recall"] == pytest.approx(2 / 3)
    assert scores["per_persona"]["a"]["personal_recall"] == 0.5
    assert scores["per_persona"]["b"]["personal_precision"] == 1.0
    interval = scores["confidence_intervals"]["personal_recall_implicit"]
    assert interval["estimate"] == 0.5
    without = score_records(records, ScopeSettings(bootstrap_resamples=30))
    assert "personal_recall" not in without["metrics"]
    assert "personal_recall" not in without["confidence_intervals"]


def test_report_shows_personal_values_with_paired_deltas(tmp_path: Path) -> None:

    n = len(PERSONAS)  # enough users for intervals (stats.MIN_USERS)
    flat = {"personal_recall": [0.0] * n, "personal_recall_implicit": [0.0] * n,
            "personal_precision": [None] * n}
    base = write_run(tmp_path / "base", "baseline", flat)
    arm = write_run(tmp_path / "arm", "profile", {
        "personal_recall": [0.5, 0.5, 0.5, 0.0, 1.0] * (n // 5),
        "personal_recall_implicit": [1.0] * n, "personal_precision": [0.5] * n})
    old = write_run(tmp_path / "old", "old-run")  # evaluated before the metric existed
    out = tmp_path / "report"
    build_report([base, arm, old], out, settings=SETTINGS, title="t")
    rows = markdown_rows((out / "summary.md").read_text(), "## Personal values")
    assert [row[0] for row in rows] == ["baseline", "profile", "old-run"]
    assert rows[1][1].startswith("0.500 [0.450, 0.550] (10 users); Δ +0.500 [")
    assert rows[1][1].endswith("(8/10)")  # personas 3 and 8 tied at 0
    assert rows[1][2].endswith("(10/10)")
    assert rows[2][1] == "n/a"
    # no persona pairs against an undefined base
    assert rows[1][3] == "0.500 [0.450, 0.550] (10 users)"
    group = json.loads((out / "compare.json").read_text())["groups"][0]
    profile = group["personal_values"]["profile"]["personal_recall_implicit"]
    assert profile["delta"]["mean"]["estimate"] == 1.0
    assert profile["per_persona"] == dict.fromkeys(PERSONAS, 1.0)
    assert "Personal values" in (out / "report.html").read_text()
    (plain,) = [compare_runs(g, SETTINGS) for g in
                load_groups([old, write_run(tmp_path / "b2", "baseline")], [])]
    assert personal_table(plain) is None and personal_json(plain) == {}
    assert personal_markdown([plain]) == ""
