"""Cold start with a growing profile: each evaluated session of a new user is answered with the
profile mined from the sessions seen before it, never from that session or a later one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptcommand.arms import profile as profiles_module
from adaptcommand.arms.profile import eval_profile_texts, growing_profiles
from adaptcommand.data.io import load_split
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.splits import SplitConfig
from adaptcommand.data.synth import synthesize
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation import predictor as predictor_module
from adaptcommand.evaluation import runs as runs_module
from adaptcommand.evaluation.runs import Scope, adapter_settings, evaluate_arm, resolve_config
from adaptcommand.evaluation.turns import session_id_of
from adaptcommand.models.profile_prompt import profile_text
from adaptcommand.routines.mining import mine_persona
from test_evaluation_adapters import save_random_adapters
from test_profile_arms import recording
from test_training_engine import single_thread  # noqa: F401  (autouse fixture)

QUICK = {"model.name": "tiny-random", "generation.max_new_tokens": 2,
         "evaluation.skip_assistant_turns": 0,
         "evaluation.bootstrap_resamples": 20, "evaluation.split": "cold_start"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 trained personas and one new user: 2 profile sessions, then 5 evaluated ones."""
    root = tmp_path_factory.mktemp("growing")
    synthesize(3, 8, 0, root / "raw")
    prepare_from_source(root / "raw", root / "data", SplitConfig(
        cold_start_personas=1, cold_start_profile_sessions=2, cold_start_sessions=5))
    return root / "data"


def new_user(data: Path) -> str:
    return next(pid for pid, sessions in load_split(data, "cold_start").items() if sessions)


def test_the_miner_never_sees_the_answered_session_or_a_later_one(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def spy(persona_id: str, dialogues: list, settings: object) -> object:
        calls.append((persona_id, [m.text for d in dialogues for m in d.messages]))
        return mine_persona(persona_id, dialogues, settings)

    monkeypatch.setattr(profiles_module, "mine_persona", spy)
    growing = growing_profiles(data, min_seen=3)
    pid = new_user(data)
    evaluated = load_split(data, "cold_start")[pid]
    profile_sessions = load_split(data, "cold_start_profile")[pid]
    keys = [(pid, session_id_of(d, i)) for i, d in enumerate(evaluated)]
    assert list(growing.profiles) == keys[1:]  # 2 seen before the first: not evaluated
    assert [growing.seen[key] for key in keys[1:]] == [3, 4, 5, 6]
    assert len(calls) == len(keys) - 1
    for position, (called_for, read) in enumerate(calls, start=1):
        assert called_for == pid
        seen = [*profile_sessions, *evaluated[:position]]
        # exactly the sessions before the answered one (evaluated[position]), in time order
        assert read == [m.text for d in seen for m in d.messages]
    assert growing.profiles[keys[-1]].sessions_used == 6


def test_growing_needs_the_cold_start_split(data: Path, tmp_path: Path) -> None:
    settings = resolve_config(None, {**QUICK, "evaluation.split": "test",
                                     "profile.source": "growing"})
    with pytest.raises(AdaptCommandError, match="evaluation.split=cold_start"):
        evaluate_arm(settings, Scope(data=data), tmp_path / "run", "x", show_progress=False)


def test_merged_adapter_with_a_growing_profile(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merged adapter trained with profile lines (no profile.json for the new user) is
    evaluated with the profile grown from the sessions seen, per sessions seen."""
    pid = new_user(data)
    merged = tmp_path / "merged"
    save_random_adapters(merged, [pid])
    (merged / "manifest.json").write_text(json.dumps(
        {"strategy": "merged", "base_model": "tiny-random", "config": {"profile": "line"}}))
    settings, strategy = adapter_settings(merged, QUICK, None)
    assert settings.prompt.profile == "line"
    with pytest.raises(AdaptCommandError, match="profile.source=growing"):
        evaluate_arm(settings, Scope(data=data), tmp_path / "train", strategy, adapters=merged,
                     show_progress=False)

    growing = settings.model_copy(update={"profile": settings.profile.model_copy(
        update={"source": "growing", "min_seen_sessions": 4})})
    prompts = recording(monkeypatch, predictor_module)
    given: dict = {}

    def texts_spy(*args: object) -> object:
        texts = eval_profile_texts(*args)

        def recorded(turns: list) -> list:
            found = texts(turns)
            given.update(zip([(t.persona_id, t.session_id) for t in turns], found, strict=True))
            return found
        return recorded

    monkeypatch.setattr(runs_module, "eval_profile_texts", texts_spy)
    results = evaluate_arm(growing, Scope(data=data), tmp_path / "growing", "merged+profile",
                           adapters=merged, show_progress=False)
    assert results["config"]["profile"] == {"source": "growing", "min_seen_sessions": 4}
    assert results["counts"]["sessions"] == 3  # seen 4, 5 and 6 sessions before
    by_seen = results["by_sessions_seen"]
    assert list(by_seen) == ["4", "5", "6"]
    assert sum(group["turns"] for group in by_seen.values()) == results["counts"]["turns"]
    assert all("personal_recall" in group for group in by_seen.values())
    metas = {(pid, session_id_of(d, i)): d.meta
             for i, d in enumerate(load_split(data, "cold_start")[pid])}
    mined = growing_profiles(data, min_seen=4).profiles
    assert set(given) == set(mined)
    assert given == {key: profile_text(growing.prompt, mined[key], metas[key]) for key in mined}
    assert any(text is not None for text in given.values())
    assert sum("User profile" in prompt for prompt in prompts) >= sum(
        text is not None for text in given.values())
    assert "profile" not in resolve_config(None, QUICK).model_dump()  # default: left out


def test_probe_of_a_growing_arm_reads_the_profile_sessions_only(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adaptcommand.evaluation import probe as probe_module
    from adaptcommand.routines.mining import mine_profiles

    used: list[dict] = []
    real = probe_module.probe_profile_texts

    def spy(settings: object, items: list, profiles: dict) -> object:
        used.append(dict(profiles))
        return real(settings, items, profiles)

    monkeypatch.setattr(probe_module, "probe_profile_texts", spy)
    settings = resolve_config(None, {**QUICK, "prompt.profile": "line",
                                     "profile.source": "growing"})
    probe = probe_module.run_probe(settings, Scope(data=data), tmp_path / "probe",
                                   "baseline+profile", show_progress=False)
    pid = new_user(data)
    assert used == [mine_profiles({pid: load_split(data, "cold_start_profile")[pid]})]
    assert probe["counts"]["personas"] == 1
