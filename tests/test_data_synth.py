"""The synthetic EdgeWisePersona generator: schema, statistics, dialogue content, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.data.io import read_source_layout
from adaptcommand.data.schema import Character, Routine, Session, actions_dict
from adaptcommand.data.synth import (
    STATS_FILE,
    SynthConfig,
    SynthSummary,
    User,
    generate_user,
    synthesize,
)
from adaptcommand.data.synth.imperfections import DRIFT_WINDOW
from adaptcommand.data.synth.replies import ACKS, NAMED_ACKS
from adaptcommand.data.synth.routines import matches, set_triggers
from adaptcommand.data.synth.stats import (
    REAL_SAMPLE_DISTINCT,
    distinct_n,
    distinct_profile,
    reference_texts,
    states_values,
)
from adaptcommand.errors import DataError
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.fileio import read_jsonl

FILES = ("characters.jsonl", "routines.jsonl", "sessions.jsonl", STATS_FILE)
TOLERANCE = {
    "routines_per_user": 0.3, "triggers_per_routine": 0.05, "devices_per_routine": 0.3,
    "actions_per_routine": 0.8, "messages_per_session": 0.8, "routine_driven_share": 0.05,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[SynthSummary, Path]:
    """The default 200 x 50 corpus, generated once for the module."""
    out = tmp_path_factory.mktemp("synth")
    return synthesize(200, 50, seed=0, out_dir=out), out


@pytest.fixture(scope="module")
def users(corpus) -> list[tuple[Character, list[Routine], list[Session]]]:
    """The written files, read back through the schema models (line i = user i)."""
    _, out = corpus
    read = [[obj for _, obj in read_jsonl(out / name)] for name in FILES[:3]]
    return [
        (Character.model_validate(c), [Routine.model_validate(r) for r in rs["routines"]],
         [Session.model_validate(s) for s in ss["sessions"]])
        for c, rs, ss in zip(*read, strict=True)
    ]


@pytest.fixture(scope="module")
def clean_users() -> list[User]:
    """Users with every imperfection off: they replay their routines exactly."""
    return [generate_user(0, user, 50, SynthConfig.clean()) for user in range(30)]


@pytest.fixture(scope="module")
def default_users() -> list[User]:
    """The first users of the default corpus, with what the generator knows of each session."""
    return [generate_user(0, user, 50) for user in range(30)]


def _routine_sessions(users):
    for _, routines, sessions in users:
        for session in sessions:
            if session.applied_routines:
                yield routines[session.applied_routines[0]], session


def test_every_record_is_valid_and_lines_are_aligned(corpus, users) -> None:
    _, out = corpus
    for name in FILES[:3]:
        keys = {tuple(obj) for _, obj in read_jsonl(out / name)}
        assert keys == {(name.removesuffix("s.jsonl") + "s",)} or keys == {("character",)}
    assert len(users) == 200
    for character, routines, sessions in users:
        assert len(character.character) > 80
        assert [s.session_id for s in sessions] == list(range(50))
        for session in sessions:
            roles = [m.role for m in session.messages]
            assert 4 <= len(roles) <= 16
            assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (len(roles) % 2)
            assert all(0 <= i < len(routines) for i in session.applied_routines)
            assert session.session_summarization


def test_prepare_reads_the_layout_unchanged(corpus) -> None:
    _, out = corpus
    dialogues = read_source_layout(out)
    assert len(dialogues) == 200 * 50
    assert (dialogues[0].persona_id, dialogues[-1].persona_id) == ("persona_000", "persona_199")


def test_statistics_are_close_to_the_published_ones(corpus) -> None:
    summary, out = corpus
    for name, tolerance in TOLERANCE.items():
        assert abs(summary.stats[name] - summary.published[name]) <= tolerance, name
    assert json.loads((out / STATS_FILE).read_text()) == json.loads(
        json.dumps(summary.to_json()))


@pytest.mark.parametrize("which", ["users", "clean_users"])
def test_session_meta_matches_the_applied_routine_and_no_other(which, request) -> None:
    """Without imperfections no spontaneous session is in a routine's context; by default the
    configured share of them is."""
    users = [u[:3] for u in request.getfixturevalue(which)]
    for routine, session in _routine_sessions(users):
        meta = session.meta.model_dump()
        assert all(meta[f] == v for f, v in set_triggers(routine).items())
    spontaneous = [any(matches(r, s.meta.model_dump()) for r in routines)
                   for _, routines, sessions in users for s in sessions if not s.applied_routines]
    share = sum(spontaneous) / len(spontaneous)
    if which == "clean_users":
        assert share == 0
    else:
        assert abs(share - SynthConfig().routine_context_spontaneous) < 0.03


def _value_free_share(users) -> float:
    driven = list(_routine_sessions(users))
    value_free = [s for _, s in driven
                  if not any(states_values(m.text) for m in s.messages if m.role == "user")]
    return len(value_free) / len(driven)


def test_a_share_of_routine_sessions_never_states_a_value(users, corpus) -> None:
    """The configured share of routine sessions states no value (the real sample has almost
    none); 0.4 of them, as the generator had before, when asked."""
    share = _value_free_share(users)
    assert abs(share - SynthConfig().value_free_share) <= 0.01
    assert corpus[0].stats["value_free_routine_share"] == round(share, 3)
    config = SynthConfig(value_free_share=0.4)
    many = [generate_user(0, user, 50, config)[:3] for user in range(30)]
    assert 0.3 <= _value_free_share(many) <= 0.5


@pytest.mark.parametrize(("text", "stated"), [
    ("Can you turn up the heat a bit?", False),
    ("Could you set up my usual rainy-evening routine?", False),
    ("It's warm out and the rain won't stop.", False),
    ("Set it to 24 degrees, please.", True),
    ("Could you set the TV to YouTube?", True),
    ("Dim the lights with a warm color.", True),
    ("Please arm the security system.", True),
])
def test_states_values_detects_setting_values(text: str, stated: bool) -> None:
    assert states_values(text) is stated


def _mentions(text: str, param: str, value: object) -> bool:
    if param == "armed":
        return re.search(r"\barm" if value else r"\bdisarm", text, re.IGNORECASE) is not None
    if isinstance(value, int):
        return re.search(rf"\b{value}\b", text) is not None
    return str(value).lower() in text.lower()


def test_assistant_applies_every_routine_value_in_words(clean_users) -> None:
    for routine, session in _routine_sessions([u[:3] for u in clean_users]):
        said = " ".join(m.text for m in session.messages if m.role == "assistant")
        for device, settings in actions_dict(routine.actions).items():
            for param, value in settings.items():
                assert _mentions(said, param, value), (device, param, value, said)


def test_distinct_n_of_generated_text_is_near_the_real_sample(corpus, real_sample) -> None:
    summary, _ = corpus
    real = distinct_profile(reference_texts(real_sample))
    assert {k: real[k] for k in REAL_SAMPLE_DISTINCT} == REAL_SAMPLE_DISTINCT
    for n in (1, 2, 3):
        ratio = summary.distinct[f"distinct_{n}"] / real[f"distinct_{n}"]
        assert 0.8 <= ratio <= 1.25, (n, ratio)


def test_distinct_n_counts_unique_ngrams_within_texts() -> None:
    assert distinct_n(["A b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a b", "b a"], 2) == 1.0
    assert distinct_n(["It's it's"], 1) == 0.5


def test_bad_reference_line_is_located(tmp_path) -> None:
    ref = tmp_path / "ref.jsonl"
    ref.write_text('{"persona_id": "p", "messages": []}\n{"persona_id": "p"}\n')
    with pytest.raises(DataError, match=r"ref.jsonl:2: field 'messages'"):
        reference_texts(ref)


def _bytes(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path) -> None:
    first = _bytes(synthesize(12, 10, seed=7, out_dir=tmp_path / "a").out_dir)
    again = _bytes(synthesize(12, 10, seed=7, out_dir=tmp_path / "b").out_dir)
    other = _bytes(synthesize(12, 10, seed=8, out_dir=tmp_path / "c").out_dir)
    assert first == again
    assert all(first[name] != other[name] for name in FILES[:3])


def test_a_user_does_not_depend_on_how_many_users_are_generated(tmp_path) -> None:
    synthesize(6, 10, seed=3, out_dir=tmp_path)
    line = (tmp_path / "sessions.jsonl").read_text().splitlines()[4]
    sessions = generate_user(3, 4, 10)[2]
    assert json.loads(line)["sessions"] == [s.model_dump(mode="json") for s in sessions]


def test_users_keep_their_own_values_across_routines(users) -> None:
    """Habits make routine values user-specific: a user's heating temperatures vary little,
    across users a lot."""
    spreads, means = [], []
    for _, routines, _ in users:
        temps = [r.actions.ac.temperature for r in routines
                 if r.actions.ac and r.actions.ac.mode == "heat" and r.actions.ac.temperature]
        if len(temps) >= 2:
            spreads.append(max(temps) - min(temps))
            means.append(sum(temps) / len(temps))
    assert sum(spreads) / len(spreads) <= 2.5
    assert max(means) - min(means) >= 5


def test_cli_prints_statistics_next_to_published_and_writes_files(tmp_path) -> None:
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--personas", "3",
                                      "--sessions", "6", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "routines_per_user" in result.output and "3.98" in result.output
    assert "distinct_2" in result.output and "0.2823" in result.output
    assert all((tmp_path / name).is_file() for name in FILES)
    assert len((tmp_path / "sessions.jsonl").read_text().splitlines()) == 3


def test_zero_personas_is_refused(tmp_path) -> None:
    with pytest.raises(DataError, match="at least one"):
        synthesize(0, 5, seed=0, out_dir=tmp_path)


def _facts(user: User):
    for session, facts in zip(user.sessions, user.facts, strict=True):
        routine = user.routines[session.applied_routines[0]] if session.applied_routines else None
        yield session, facts, routine


def _differences(committed: dict, routine: Routine) -> list[tuple[str, str]]:
    usual = actions_dict(routine.actions)
    return [(d, p) for d, values in committed.items() for p, v in values.items()
            if usual[d][p] != v]


def test_clean_users_commit_exactly_their_routines(clean_users) -> None:
    for user in clean_users:
        for _, facts, routine in _facts(user):
            assert not (facts.partial or facts.tweaked or facts.corrected or facts.before_drift
                        or facts.routine_context)
            if routine is not None:
                assert facts.committed == actions_dict(routine.actions)


def test_imperfections_occur_at_their_configured_shares(corpus) -> None:
    summary, _ = corpus
    config, seen = SynthConfig(), summary.imperfections
    assert abs(seen["tweaked_routine_sessions"] - config.tweak_rate) < 0.02
    # Routines with a single device cannot be applied in part (about 2% of them).
    assert abs(seen["partial_routine_sessions"] - config.partial_rate) < 0.02
    assert abs(seen["open_trigger_routines"] - config.open_trigger_rate) < 0.01
    assert 0.03 <= seen["corrected_sessions"] <= config.mind_change_rate
    assert 0.02 <= seen["before_drift_routine_sessions"] <= 0.08
    assert json.loads((corpus[1] / STATS_FILE).read_text())["config"] == config.model_dump()


def test_routines_hold_the_current_values_and_sessions_stray_by_one_value(default_users) -> None:
    """A routine session commits the routine's current settings for the devices it applies,
    except one value on a one-day tweak and, before a drift, the drifting value; routines.jsonl
    holds the value after the drift, which every drifting routine shows before 60% of the
    history."""
    last_old: dict[tuple[int, int], int] = {}
    for u, user in enumerate(default_users):
        for session, facts, routine in _facts(user):
            if routine is None:
                assert session.applied_routines == [] and not facts.tweaked
                continue
            differ = _differences(facts.committed, routine)
            assert set(facts.committed) <= set(actions_dict(routine.actions))
            assert len(differ) <= facts.tweaked + facts.before_drift
            assert facts.partial == (len(facts.committed) < len(actions_dict(routine.actions)))
            if facts.before_drift:
                key = (u, session.applied_routines[0])
                last_old[key] = max(last_old.get(key, 0), session.session_id)
    assert last_old
    assert max(last_old.values()) < round(DRIFT_WINDOW[1] * 50)


def test_what_the_assistant_says_is_what_the_session_commits(default_users,
                                                             clean_users) -> None:
    """The action extractor on the assistant's turns, later turns overriding earlier ones,
    recovers each session's committed settings (corrections included) in nearly every session;
    the rest are extractor misreadings, as often as without imperfections."""
    from adaptcommand.evaluation.actions import extract_actions

    def agree(users: list[User]) -> tuple[float, int]:
        same = total = corrected = 0
        for user in users[:16]:
            for session, facts, _ in _facts(user):
                state: dict[str, dict] = {}
                for message in session.messages:
                    if message.role == "assistant":
                        for device, values in extract_actions(message.text).items():
                            state.setdefault(device, {}).update(values)
                said = {(d, p, v) for d, vs in state.items() for p, v in vs.items()}
                want = {(d, p, v) for d, vs in facts.committed.items() for p, v in vs.items()}
                same += said == want
                total += 1
                corrected += facts.corrected
        return same / total, corrected

    default, corrected = agree(default_users)
    clean, _ = agree(clean_users)
    assert corrected > 20
    assert default >= 0.98 and default >= clean - 0.01


def test_cli_set_changes_a_share_and_rejects_bad_ones(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "a"), "--personas", "2",
                                 "--sessions", "8", "--clean", "--set", "drift_rate=1"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "a" / STATS_FILE).read_text())["config"]
    assert config == {**SynthConfig.clean().model_dump(), "drift_rate": 1.0}
    for bad, field in (("tweak_rate=2", "--set tweak_rate"), ("typo_rate=0.1", "--set typo_rate")):
        result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "b"),
                                     "--personas", "2", "--set", bad])
        assert isinstance(result.exception, DataError) and field in str(result.exception)
        assert not (tmp_path / "b").exists()


def _ack_first_shares(config: SynthConfig, n_users: int = 5) -> tuple[float, float]:
    """Shares of assistant replies opening with an acknowledgement ('Sure.'): among those
    that apply a setting (read by the action extractor), and among those that only ask."""
    opens = tuple(a.split(",")[0].rstrip(".") for a in ACKS + NAMED_ACKS)
    applying, asking = [], []
    for user in range(n_users):
        for session in generate_user(0, user, 30, config)[2]:
            for m in session.messages:
                if m.role == "assistant" and extract_actions(m.text):
                    applying.append(m.text.startswith(opens))
                elif m.role == "assistant" and m.text.endswith("?"):
                    asking.append(m.text.startswith(opens))
    return sum(applying) / len(applying), sum(asking) / len(asking)


def test_acknowledgements_open_questions_more_than_reports() -> None:
    """As in the real sample (0.30 of applying replies, 0.82 of asking ones open with 'Sure.'
    and the like), so that a model's 'Sure.' does not lead into a question when the user has
    stated the values; the knobs set the shares."""
    applying, asking = _ack_first_shares(SynthConfig())
    assert applying <= 0.4 and asking >= 0.6
    applying, asking = _ack_first_shares(SynthConfig(ack_before_report=1.0,
                                                     ack_before_question=0.0))
    assert applying >= 0.85 and asking == 0.0
