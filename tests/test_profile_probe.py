"""The preference probe of profile arms: its prompts carry the arm's profile line, built by the
evaluation's own function from the persona's mined profile and the probe's trigger context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptcommand.data.io import load_split
from adaptcommand.evaluation import predictor as predictor_module
from adaptcommand.evaluation.probe import PROBE_FILE, load_routines, probe_items, run_probe
from adaptcommand.evaluation.runs import Scope, resolve_config
from adaptcommand.models.profile_prompt import profile_text
from adaptcommand.routines.mining import mine_profiles
from adaptcommand.routines.profile import write_profiles
from test_profile_arms import recording
from test_training_engine import single_thread  # noqa: F401  (autouse fixture)

QUICK = {"model.name": "tiny-random", "generation.max_new_tokens": 2,
         "evaluation.bootstrap_resamples": 20}


def test_probe_prompts_of_a_profile_arm_carry_its_line(
    tmp_path: Path, synthetic_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiles = mine_profiles(load_split(synthetic_data, "train"))
    write_profiles(tmp_path / "profiles.json", profiles)
    items = probe_items(load_routines(Scope(data=synthetic_data), "test"))
    settings = resolve_config(None, {**QUICK, "prompt.profile": "line"})
    expected = [profile_text(settings.prompt, profiles[i.persona_id], i.context) for i in items]
    assert any(text is not None and "User profile" in text.text for text in expected)

    seen = recording(monkeypatch, predictor_module)
    probe = run_probe(settings, Scope(data=synthetic_data), tmp_path / "profile", "p+profile",
                      show_progress=False, profiles_file=tmp_path / "profiles.json")
    assert probe["profiles"] == str(tmp_path / "profiles.json")
    assert len(seen) == len(items)
    for prompt, item, text in zip(seen, items, expected, strict=True):
        assert item.prompt in prompt
        if text is not None:
            assert f"{text.text}\n{item.prompt}" in prompt  # before the user's message

    seen.clear()
    run_probe(resolve_config(None, QUICK), Scope(data=synthetic_data), tmp_path / "plain",
              "baseline", show_progress=False)
    assert len(seen) == len(items)
    assert not any("User profile" in prompt for prompt in seen)
    plain = json.loads((tmp_path / "plain" / PROBE_FILE).read_text())
    assert "profiles" not in plain


def test_probe_cli_profiles_feed_a_profile_arm_prompt(tmp_path: Path, synthetic_data: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from adaptcommand.cli import app

    write_profiles(tmp_path / "profiles.json", mine_profiles(load_split(synthetic_data, "train")))
    seen = recording(monkeypatch, predictor_module)
    sets = [f"{key}={value}" for key, value in {**QUICK, "prompt.profile": "line"}.items()]
    result = CliRunner().invoke(app, ["probe", "--data", str(synthetic_data), "--out",
                                      str(tmp_path / "probe"), "--profiles",
                                      str(tmp_path / "profiles.json"),
                                      *[arg for s in sets for arg in ("--set", s)]])
    assert result.exit_code == 0, result.output
    probe = json.loads((tmp_path / "probe" / PROBE_FILE).read_text())
    assert probe["arm"] == "baseline+profile"  # the model answered, with the line
    assert any("User profile" in prompt for prompt in seen)
