"""The mined profile answering alone (`mined-profile`): what its line states for a context, in
words the scorer reads back exactly, evaluated like any arm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.arms.profile_answer import (
    NO_ANSWER,
    answer_text,
    evaluate_profile_answers,
)
from adaptcommand.cli.app import app
from adaptcommand.data.io import load_split
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.synth import synthesize
from adaptcommand.data.synth.config import SynthConfig
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.evaluation.personal_values import personal_metrics, personal_turn, score_personal
from adaptcommand.evaluation.probe import (
    load_routines,
    probe_items,
    profile_answers,
    run_profile_probe,
)
from adaptcommand.evaluation.runs import Scope, resolve_config
from adaptcommand.evaluation.turns import select_turns, session_id_of
from adaptcommand.models.profile_prompt import profile_settings
from adaptcommand.routines.mining import mine_profiles
from adaptcommand.routines.profile import MinedRoutine, UserProfile, write_profiles

EVENING = {"time_of_day": "evening", "day_of_week": "weekday", "sun_phase": "after_sunset",
           "weather": "rainy", "outdoor_temp": "cold"}


def _profile() -> UserProfile:
    evening = MinedRoutine(triggers={"time_of_day": "evening"}, support=3, sessions=[1, 2, 3],
                           actions={"ac": {"temperature": 22, "mode": "heat"},
                                    "lights": {"brightness": 50, "color": "warm"}})
    return UserProfile(persona_id="p", sessions_used=6, routines=[evening],
                       common_settings={"lights": {"brightness": 80},
                                        "speaker": {"volume": 30}})


def test_the_answer_is_the_routine_for_the_context_plus_the_usual_other_devices() -> None:
    assert profile_settings(_profile(), EVENING) == {
        "speaker": {"volume": 30}, "ac": {"temperature": 22, "mode": "heat"},
        "lights": {"brightness": 50, "color": "warm"}}  # the routine decides the lights
    morning = {**EVENING, "time_of_day": "morning"}
    assert profile_settings(_profile(), morning) == {"lights": {"brightness": 80},
                                                     "speaker": {"volume": 30}}
    assert profile_settings(_profile(), None) == profile_settings(_profile(), morning)
    assert answer_text({}) == NO_ANSWER and extract_actions(NO_ANSWER) == {}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 users x 20 sessions with many value-free ("my usual") sessions."""
    root = tmp_path_factory.mktemp("profile_answer")
    synthesize(4, 20, 0, root / "raw", config=SynthConfig(value_free_share=0.5))
    prepare_from_source(root / "raw", root / "data")
    return root / "data"


def test_every_mined_setting_is_read_back_exactly_from_its_answer(data: Path) -> None:
    profiles = mine_profiles(load_split(data, "train"))
    answers = [dict(routine.actions) for profile in profiles.values()
               for routine in profile.routines]
    answers += [profile.common_settings for profile in profiles.values()]
    assert len(answers) > 8 and any("security" in a for a in answers)
    for actions in answers:
        assert extract_actions(answer_text(actions)) == actions


def test_evaluated_like_an_arm_it_scores_exactly_what_the_profile_states(
        data: Path, tmp_path: Path) -> None:
    profiles = mine_profiles(load_split(data, "train"))
    write_profiles(tmp_path / "profiles.json", profiles)
    settings = resolve_config(None, {"evaluation.skip_assistant_turns": 1,
                                     "prompt.max_context_messages": 2})
    results = evaluate_profile_answers(settings, Scope(data=data), tmp_path / "run",
                                       profiles_file=tmp_path / "profiles.json",
                                       show_progress=False)

    test = load_split(data, "test")
    metas = {(pid, session_id_of(d, i)): d.meta for pid, ds in test.items()
             for i, d in enumerate(ds)}
    direct = []
    for turn in select_turns(test, 1):
        personal = personal_turn(turn.context, turn.reference, 2)
        answer = profile_settings(profiles[turn.persona_id],
                                  metas[turn.persona_id, turn.session_id])
        direct.append((personal, score_personal(answer, personal)))
    expected = personal_metrics(direct)
    assert results["arm"] == "mined-profile" and results["counts"]["turns"] == len(direct)
    for metric in ("personal_recall", "personal_recall_implicit", "personal_precision"):
        assert results["metrics"][metric] == pytest.approx(expected[metric]), metric
    assert results["metrics"]["personal_recall_implicit"] > 0.3  # the profile knows the user


def test_baseline_with_profiles_and_no_profile_prompt_lets_the_profile_answer(
        data: Path, tmp_path: Path) -> None:
    write_profiles(tmp_path / "profiles.json", mine_profiles(load_split(data, "train")))
    common = ["baseline", "--data", str(data), "--profiles", str(tmp_path / "profiles.json")]
    result = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["arm"] == "mined-profile"
    assert results["profiles"] == str(tmp_path / "profiles.json")
    refused = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "r2"),
                                       "--retrieval-k", "3"])
    assert refused.exit_code != 0 and "--retrieval-k" in refused.output
    # its probe goes next to it (same arm name), answering what the line states
    probed = CliRunner().invoke(app, ["probe", *common[1:], "--out", str(tmp_path / "run")])
    assert probed.exit_code == 0, probed.output
    probe = json.loads((tmp_path / "run" / "probe.json").read_text())
    assert probe["arm"] == "mined-profile"


def test_the_probe_answer_is_the_line_the_arm_states(data: Path) -> None:
    profiles = mine_profiles(load_split(data, "train"))
    routines = load_routines(Scope(data=data))
    items = probe_items(routines)
    _, answers = profile_answers(items, routines, profiles)
    for item, answer in zip(items, answers, strict=True):
        context = routines[item.persona_id][item.routine_index].triggers.model_dump(
            exclude_none=True)
        assert answer == profile_settings(profiles[item.persona_id], context)
    assert any(answers)


def test_a_profile_probe_without_profiles_is_refused(data: Path, tmp_path: Path) -> None:
    with pytest.raises(AdaptCommandError, match="--profiles"):
        run_profile_probe(resolve_config(None, {}), Scope(data=data), tmp_path, None)
