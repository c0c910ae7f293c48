"""The routine miner, the user profile and the routine scorer (`adaptcommand routines ...`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.data.io import RoutinesLine, load_split
from adaptcommand.data.schema import CleanDialogue, Routine, SessionMeta
from adaptcommand.errors import DataError
from adaptcommand.routines.mining import MiningSettings, mine_profiles, session_end_state
from adaptcommand.routines.profile import (
    MinedRoutine,
    UserProfile,
    read_profiles,
    routine_for_context,
    to_edgewise_routines,
    write_profiles,
)
from adaptcommand.routines.scoring import match_routine, read_routines_file, score_routines

FIELDS = ("time_of_day", "day_of_week", "sun_phase", "weather", "outdoor_temp")
RAINY_EVENING = ("evening", "weekday", "after_sunset", "rainy", "cold")


def meta(*values: str) -> SessionMeta:
    return SessionMeta(**dict(zip(FIELDS, values, strict=True)))


def dialogue(session_id: int, context: tuple[str, ...], *texts: str,
             persona: str = "persona_000") -> CleanDialogue:
    """A session whose messages alternate user / assistant, starting with the user."""
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "text": text}
                for i, text in enumerate(texts)]
    return CleanDialogue(persona_id=persona, session_id=session_id, meta=meta(*context),
                         messages=messages)


# --- the committed end state of one session ---------------------------------------------------


def test_end_state_later_turns_override_and_questions_commit_nothing() -> None:
    session = dialogue(
        0, RAINY_EVENING,
        "Set the lights to 40% brightness, please.",
        "Dimming the lights to 40% brightness. What color would you like?",
        "Actually, make the lights 30% brightness with a warm color.",
        "I've set the lights to 30% brightness with a warm color.",
    )
    assert session_end_state(session) == {"lights": {"brightness": 30, "color": "warm"}}


def test_end_state_counts_accepted_offers_not_declined_ones() -> None:
    offer = "Sure. Shall I also set the AC to heat mode at 22 degrees, like usual?"
    accepted = dialogue(0, RAINY_EVENING, "Turn on the TV.", offer, "Yes, please.")
    declined = dialogue(1, RAINY_EVENING, "Turn on the TV.", offer, "No, thanks.")
    assert session_end_state(accepted) == {"tv": {}, "ac": {"temperature": 22, "mode": "heat"}}
    assert session_end_state(declined) == {"tv": {}}


def test_end_state_takes_the_device_the_reply_confirms() -> None:
    """"volume 35" alone reads as the TV's; the reply says it was the speaker's."""
    session = dialogue(
        0, RAINY_EVENING,
        "Put some music on, please.",
        "What volume would you like me to set it to?",
        "I would prefer volume 35.",
        "Setting the speaker volume to 35.",
    )
    assert session_end_state(session) == {"speaker": {"volume": 35}}


# --- mining -----------------------------------------------------------------------------------

HEAT = "Setting the AC to heat mode at {t} degrees with fan speed 1."
LIGHTS = "I've dimmed the lights to 30% brightness with a warm color."
MILD_MORNING = ("morning", "weekday", "daylight", "{w}", "mild")


def tv(volume: int) -> str:
    return f"I've switched the TV to Netflix with volume {volume}."


def morning(weather: str) -> tuple[str, ...]:
    return tuple(v.format(w=weather) for v in MILD_MORNING)


def history() -> list[CleanDialogue]:
    """Two routines with the imperfections real users show, in time order:
    - rainy evenings: AC heat 22 fan 1 + lights 30 warm; one session tweaks the temperature,
      one applies only the AC, one changes its mind on the lights, and a spontaneous session
      in the same context plays music;
    - mild weekday mornings whatever the weather: TV on Netflix, volume 20 drifting to 30.
    """
    return [
        dialogue(0, RAINY_EVENING, "The usual, please.", f"{HEAT.format(t=22)} {LIGHTS}"),
        dialogue(1, morning("sunny"), "Turn on the TV.", tv(20)),
        dialogue(2, RAINY_EVENING, "A bit warmer today.", f"{HEAT.format(t=24)} {LIGHTS}"),
        dialogue(3, morning("cloudy"), "TV please.", tv(20)),
        dialogue(4, RAINY_EVENING, "Just the AC.", HEAT.format(t=22)),
        dialogue(5, ("afternoon", "weekend", "daylight", "sunny", "hot"),
                 "Set the lights to 80% brightness with a cool color.", "Done."),
        dialogue(6, morning("rainy"), "TV.", tv(20)),
        dialogue(7, RAINY_EVENING, "Set the lights to 50% brightness.",
                 "Brightening the lights to 50% brightness.", "No, actually, my usual.",
                 f"{HEAT.format(t=22)} {LIGHTS}"),
        dialogue(8, RAINY_EVENING, "Play some jazz on the speaker at volume 50.",
                 "Setting the speaker volume to 50."),
        dialogue(9, morning("sunny"), "TV.", tv(30)),
        dialogue(10, morning("cloudy"), "TV.", tv(30)),
        dialogue(11, RAINY_EVENING, "Evening!", f"{HEAT.format(t=22)} {LIGHTS}"),
    ]


def test_miner_recovers_routines_through_tweaks_partial_use_open_triggers_and_drift() -> None:
    profile = mine_profiles({"persona_000": history()})["persona_000"]
    found = {tuple(sorted(r.triggers.items())): r for r in profile.routines}
    evening = found[tuple(sorted(zip(FIELDS, RAINY_EVENING, strict=True)))]
    assert evening.actions == {"ac": {"temperature": 22, "mode": "heat", "fan_speed": 1},
                               "lights": {"brightness": 30, "color": "warm"}}
    assert evening.sessions == [0, 2, 4, 7, 11]  # not the spontaneous music session 8
    assert evening.support == 5
    assert evening.field_support["ac.temperature"] == 4
    assert evening.confidence["ac.temperature"] == pytest.approx(0.8)
    assert evening.field_support["lights.color"] == 4
    mornings = found[(("day_of_week", "weekday"), ("outdoor_temp", "mild"), ("sun_phase",
                      "daylight"), ("time_of_day", "morning"))]  # weather left open
    assert mornings.actions == {"tv": {"volume": 30, "input_source": "Netflix"}}
    # A context seen once (session 5) is a routine too: with a dozen sessions per user most
    # routines are seen once or twice. Requiring two sessions drops it.
    afternoon = found[tuple(sorted(zip(FIELDS, ("afternoon", "weekend", "daylight", "sunny",
                                                "hot"), strict=True)))]
    assert afternoon.sessions == [5] and afternoon.support == 1
    assert len(profile.routines) == 3
    assert profile.sessions_used == 12
    strict = mine_profiles({"p": history()}, MiningSettings(min_support=2))["p"]
    assert [r.sessions for r in strict.routines] == [[0, 2, 4, 7, 11], [1, 3, 6, 9, 10]]


def test_a_lone_last_session_is_a_tweak_not_a_drift() -> None:
    """A new value needs drift_support sessions to replace the habit, even for routines that
    need only one session to exist."""
    warmer = dialogue(12, RAINY_EVENING, "Warmer tonight.", f"{HEAT.format(t=25)} {LIGHTS}")
    kept = mine_profiles({"p": [*history(), warmer]})["p"].routines[0]
    assert kept.actions["ac"]["temperature"] == 22
    eager = mine_profiles({"p": [*history(), warmer]}, MiningSettings(drift_support=1))["p"]
    assert eager.routines[0].actions["ac"]["temperature"] == 25


def test_plain_majority_keeps_the_old_value_and_min_support_drops_rare_routines() -> None:
    plain = mine_profiles({"p": history()}, MiningSettings(drift=False))["p"]
    assert {"tv": {"volume": 20, "input_source": "Netflix"}} in [r.actions for r in plain.routines]
    strict = mine_profiles({"p": history()}, MiningSettings(min_support=6))["p"]
    assert strict.routines == []


def test_max_sessions_uses_the_most_recent_sessions() -> None:
    profile = mine_profiles({"p": history()}, MiningSettings(max_sessions=4))["p"]
    assert profile.sessions_used == 4
    assert [r.sessions for r in profile.routines] == [[9, 10]]


def test_common_settings_come_from_sessions_outside_routines() -> None:
    """With routines of two sessions or more, session 5 (a hot weekend afternoon) and this one
    share no context: no routine, but the lights' brightness 80 is this user's habit; the
    music's volume 50, seen once, is not. With the default (a routine may be seen once) both
    are routines of their own, and the music session, spontaneous in the evening routine's
    context, is the one left outside: its volume is the usual setting."""
    late = dialogue(12, ("night", "weekday", "before_sunrise", "snowy", "very cold"),
                    "Set the lights to 80% brightness.", "Done.")
    strict = mine_profiles({"p": [*history(), late]}, MiningSettings(min_support=2))["p"]
    assert strict.common_settings == {"lights": {"brightness": 80}}
    profile = mine_profiles({"p": [*history(), late]})["p"]
    assert profile.common_settings == {"speaker": {"volume": 50}}


def test_mining_reads_only_messages_and_meta(synthetic_data: Path) -> None:
    """The leak test: blanking routines, applied routines and characters changes nothing."""
    train = load_split(synthetic_data, "train")
    blanked = {pid: [d.model_copy(update={"routines": None, "applied_routines": None,
                                          "character": None}) for d in ds]
               for pid, ds in train.items()}
    settings = MiningSettings(min_support=1)
    assert mine_profiles(blanked, settings) == mine_profiles(train, settings)


def test_mined_output_is_deterministic_and_schema_valid(synthetic_data: Path) -> None:
    train = load_split(synthetic_data, "train")
    first = mine_profiles(train, MiningSettings(min_support=1))
    assert first == mine_profiles(train, MiningSettings(min_support=1))
    for profile in first.values():
        RoutinesLine.model_validate(to_edgewise_routines(profile))


# --- the profile ------------------------------------------------------------------------------


def _routine(triggers: dict[str, str], support: int, volume: int) -> MinedRoutine:
    return MinedRoutine(triggers=triggers, actions={"tv": {"volume": volume}}, support=support,
                        sessions=list(range(support)))


def test_routine_for_context_prefers_more_triggers_then_support() -> None:
    profile = UserProfile(persona_id="p", sessions_used=9, routines=[
        _routine({"time_of_day": "evening"}, 5, 10),
        _routine({"time_of_day": "evening", "weather": "rainy"}, 2, 20),
        _routine({"time_of_day": "evening", "day_of_week": "weekday"}, 3, 30),
        _routine({"time_of_day": "morning"}, 9, 40),
    ])
    rainy_weekday = meta(*RAINY_EVENING)
    assert routine_for_context(profile, rainy_weekday).actions["tv"]["volume"] == 30
    sunny = {"time_of_day": "evening", "day_of_week": "weekend", "weather": "sunny"}
    assert routine_for_context(profile, sunny).actions["tv"]["volume"] == 10
    assert routine_for_context(profile, {"time_of_day": "night"}) is None


def test_profiles_round_trip_and_bad_file_is_located(tmp_path: Path) -> None:
    profiles = mine_profiles({"persona_000": history()})
    write_profiles(tmp_path / "profiles.json", profiles)
    assert read_profiles(tmp_path / "profiles.json") == profiles
    raw = json.loads((tmp_path / "profiles.json").read_text())
    raw["persona_000"]["routines"][0]["support"] = "many"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"bad\.json.*persona_000\.routines\.0\.support"):
        read_profiles(tmp_path / "bad.json")


# --- scoring: known answers -------------------------------------------------------------------


def routine(triggers: dict, actions: dict) -> Routine:
    return Routine.model_validate({"triggers": triggers, "actions": actions})


TRUE = routine({"time_of_day": "evening", "weather": "rainy"},
               {"ac": {"temperature": 22, "mode": "heat"}, "lights": {"brightness": 30}})


def test_exact_prediction_scores_one_everywhere() -> None:
    scores = score_routines({"p": [TRUE]}, {"p": [TRUE]})
    assert scores["metrics"] == {"exact_routine": 1.0, "exact_triggers": 1.0,
                                 "exact_actions": 1.0, "jaccard": 1.0, "field_accuracy": 1.0,
                                 "numeric_mae": 0.0}


def test_partial_prediction_known_answer() -> None:
    """Right triggers; AC 24 instead of 22; lights missing; an extra TV volume.
    True fields: 2 triggers + 3 actions = 5; predicted 2 + 2 + 1 = 5; shared 3 (2 triggers +
    ac.mode): Jaccard 3 / 7; field accuracy 3 / 5; numeric MAE |24 - 22| = 2."""
    pred = routine({"time_of_day": "evening", "weather": "rainy"},
                   {"ac": {"temperature": 24, "mode": "heat"}, "tv": {"volume": 10}})
    decoy = routine({"time_of_day": "morning"}, {"lights": {"brightness": 30}})
    match = match_routine(TRUE, [decoy, pred])
    assert match.predicted == 1
    assert match.jaccard == pytest.approx(3 / 7)
    assert match.field_accuracy == pytest.approx(3 / 5)
    assert (match.exact_routine, match.exact_triggers, match.exact_actions) == (False, True, False)
    assert match.abs_errors == (2.0,)


def test_overall_is_the_mean_over_true_routines_and_missing_personas_score_zero() -> None:
    other = routine({"time_of_day": "night"}, {"security": {"armed": True}})
    scores = score_routines({"a": [TRUE, other]}, {"a": [TRUE, other], "b": [TRUE]})
    assert scores["metrics"]["exact_routine"] == pytest.approx(2 / 3)
    assert scores["per_persona"]["b"]["exact_routine"] == 0.0
    assert scores["per_persona"]["a"]["jaccard"] == 1.0
    assert scores["counts"] == {"personas": 2, "true_routines": 3, "predicted_routines": 2,
                                "unmatched_predictions": 0}
    low, high = (scores["confidence_intervals"]["exact_routine"][k] for k in ("low", "high"))
    assert 0.0 <= low <= 2 / 3 <= high <= 1.0


def test_routines_file_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "routines.jsonl"
    path.write_text('{"routines": []}\n{"routines": [{"triggers": {"weather": "foggy"}, '
                    '"actions": {}}]}\n')
    with pytest.raises(DataError, match=r"routines\.jsonl:2: field 'routines\.0\.triggers\."
                                        r"weather'"):
        read_routines_file(path)


# --- the CLI on real files of the dataset's layout --------------------------------------------


def run(*args: str) -> object:
    return CliRunner().invoke(app, list(map(str, args)))


def test_mine_and_score_from_a_prepared_source_layout(tmp_path: Path) -> None:
    from adaptcommand.data.prepare import prepare_from_source
    from adaptcommand.data.synth import synthesize

    synthesize(2, 20, 3, tmp_path / "raw")
    prepare_from_source(tmp_path / "raw", tmp_path / "data")
    result = run("routines", "mine", "--data", tmp_path / "data", "--out", tmp_path / "mined")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "mined" / "routines.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        RoutinesLine.model_validate_json(line)
    assert set(read_profiles(tmp_path / "mined" / "profiles.json")) == {"persona_000",
                                                                       "persona_001"}
    result = run("routines", "score", "--pred", tmp_path / "mined" / "routines.jsonl")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "mined" / "routine_scores.json").read_text())
    assert scores["counts"]["personas"] == 2
    assert 0.5 < scores["metrics"]["jaccard"] <= 1.0
    # the truth file given explicitly gives the same numbers
    result = run("routines", "score", "--pred", tmp_path / "mined" / "profiles.json",
                 "--truth", tmp_path / "raw" / "routines.jsonl", "--out", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text())["metrics"] == scores["metrics"]


def test_score_refuses_bad_truth_with_a_located_error(tmp_path: Path) -> None:
    pred = tmp_path / "routines.jsonl"
    pred.write_text('{"routines": []}\n')
    truth = tmp_path / "truth.jsonl"
    truth.write_text("{not json\n")
    result = run("routines", "score", "--pred", pred, "--truth", truth)
    assert isinstance(result.exception, DataError)  # the CLI prints it as one line, exit 2
    assert "truth.jsonl:1: malformed JSON" in str(result.exception)
    assert not (tmp_path / "routine_scores.json").exists()


def test_dialogues_without_context_mine_no_routines_and_score_asks_for_truth(
    tmp_path: Path, real_sample: Path
) -> None:
    """The real sample has messages only (no meta, no routines): nothing can be tied to a
    context, so no routine is mined, and scoring against its (absent) routines is refused."""
    from adaptcommand.data.prepare import prepare_from_dialogues

    prepare_from_dialogues(real_sample, tmp_path / "data")
    result = run("routines", "mine", "--data", tmp_path / "data", "--out", tmp_path / "mined")
    assert result.exit_code == 0, result.output
    profiles = read_profiles(tmp_path / "mined" / "profiles.json")
    assert len(profiles) == 100
    assert all(p.routines == [] for p in profiles.values())
    result = run("routines", "score", "--pred", tmp_path / "mined" / "routines.jsonl")
    assert isinstance(result.exception, DataError)
    assert "routines" in str(result.exception)
