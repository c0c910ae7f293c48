"""Profile arms end to end on tiny-random: a profile run mines train-split profiles, writes them
next to the adapters, adds distilled examples, and evaluation renders exactly the prompts
training learned from."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from adaptcommand.data.io import load_split
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation import predictor as predictor_module
from adaptcommand.evaluation.runs import Scope, adapter_settings, evaluate_arm, resolve_config
from adaptcommand.models.profile_prompt import read_persona_profiles
from adaptcommand.routines.mining import mine_profiles
from adaptcommand.training import examples as examples_module
from adaptcommand.training import recipes
from test_training_engine import single_thread  # noqa: F401  (autouse fixture)
from test_training_runner import tiny_config


def recording(monkeypatch: pytest.MonkeyPatch, module: object) -> list[str]:
    """Every prompt `module` renders from now on."""
    seen: list[str] = []
    real = module.render_prompt

    def render(*args: object, **kwargs: object) -> str:
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(module, "render_prompt", render)
    return seen


def test_train_and_eval_render_identical_profile_prompts(
    tmp_path: Path, synthetic_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = recording(monkeypatch, examples_module)
    config = tiny_config({"prompt.profile": "line", "prompt.context_line": True,
                          "data.distill_examples_per_routine": 2, "optimizer.epochs": 1,
                          "data.max_length": 256})
    out = tmp_path / "adapters"
    recipes.run_training("unified", config, synthetic_data, out, show_progress=False)

    train = load_split(synthetic_data, "train")
    assert read_persona_profiles(out) == mine_profiles(train)  # train split only
    replies = sum(m.role == "assistant" for ds in train.values() for d in ds for m in d.messages)
    routines = sum(len(p.routines) for p in mine_profiles(train).values())
    val = load_split(synthetic_data, "val")
    val_replies = sum(m.role == "assistant" for ds in val.values() for d in ds for m in d.messages)
    assert len(trained) == replies + 2 * routines + val_replies  # distilled: train only
    assert any("User profile (" in prompt for prompt in trained)

    evaluated = recording(monkeypatch, predictor_module)
    settings, strategy = adapter_settings(out, {"evaluation.split": "train",
                                                "evaluation.skip_assistant_turns": 0,
                                                "generation.max_new_tokens": 2,
                                                "evaluation.bootstrap_resamples": 20}, None)
    assert (settings.prompt.profile, settings.prompt.context_line) == ("line", True)
    results = evaluate_arm(settings, Scope(data=synthetic_data), tmp_path / "run",
                           "unified+profile", adapters=out, show_progress=False)
    assert evaluated and set(evaluated) <= set(trained)
    assert all("It's a" in prompt for prompt in evaluated)
    assert results["config"]["prompt"]["profile"] == "line"
    assert "personal_recall_implicit" in results["metrics"]


def test_profile_prompt_without_profiles_is_refused(tmp_path: Path, synthetic_data: Path) -> None:
    settings = resolve_config(None, {"model.name": "tiny-random", "prompt.profile": "line"})
    with pytest.raises(AdaptCommandError, match="--profiles FILE"):
        evaluate_arm(settings, Scope(data=synthetic_data), tmp_path / "run", "profile",
                     show_progress=False)


def test_base_model_profile_arm_reads_a_profiles_file(
    tmp_path: Path, synthetic_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adaptcommand.routines.profile import write_profiles

    profiles = mine_profiles(load_split(synthetic_data, "train"))
    write_profiles(tmp_path / "profiles.json", profiles)
    evaluated = recording(monkeypatch, predictor_module)
    settings = resolve_config(None, {"model.name": "tiny-random", "prompt.profile": "line",
                                     "prompt.profile_placement": "system",
                                     "prompt.context_line": True,
                                     "generation.max_new_tokens": 2, "evaluation.split": "val",
                                     "evaluation.bootstrap_resamples": 20})
    results = evaluate_arm(settings, Scope(data=synthetic_data), tmp_path / "run",
                           "baseline+profile", show_progress=False,
                           profiles_file=tmp_path / "profiles.json")
    assert results["profiles"] == str(tmp_path / "profiles.json")
    identity = json.loads((tmp_path / "run" / "eval_config.json").read_text())
    assert identity["config"]["prompt"]["profile_placement"] == "system"
    assert evaluated and all("It's " in p.split("<|im_end|>")[0] for p in evaluated)  # system
    # The same path mined again with other contents is another run, not the finished one.
    fewer = mine_profiles({pid: dialogues[:1] for pid, dialogues in
                           load_split(synthetic_data, "train").items()})
    write_profiles(tmp_path / "profiles.json", fewer)
    evaluated.clear()
    again = partial(evaluate_arm, settings, Scope(data=synthetic_data), tmp_path / "run",
                    "baseline+profile", show_progress=False,
                    profiles_file=tmp_path / "profiles.json")
    with pytest.raises(AdaptCommandError, match="profiles_sha256"):
        again()
    assert again(force=True)["profiles_sha256"] != identity["profiles_sha256"]
    assert evaluated  # predicted anew


def test_the_probe_refuses_a_profile_arm_without_profiles(tmp_path: Path,
                                                         synthetic_data: Path) -> None:
    from adaptcommand.evaluation.probe import run_probe

    settings = resolve_config(None, {"model.name": "tiny-random", "prompt.profile": "line"})
    with pytest.raises(AdaptCommandError, match="--profiles FILE"):
        run_probe(settings, Scope(data=synthetic_data), tmp_path / "probe", "p",
                  show_progress=False)


def test_distilled_examples_ignore_truth_routines_and_held_out_sessions(
    tmp_path: Path, synthetic_data: Path
) -> None:
    """Changing the dataset's routines, applied_routines and every val/test session changes
    nothing in the profiles or the distilled dialogues."""
    import shutil

    from adaptcommand.arms.distilled import distilled_for
    from adaptcommand.data.io import load_splits
    from adaptcommand.fileio import read_jsonl, write_jsonl_atomic

    copy = tmp_path / "data"
    shutil.copytree(synthetic_data, copy)
    held_out = {i for entry in load_splits(copy).values() for i in entry["val"] + entry["test"]}
    lines = []
    for index, (_, line) in enumerate(read_jsonl(copy / "dialogs_clean.jsonl")):
        line["routines"] = [{"triggers": {"weather": "snowy"},
                             "actions": {"tv": {"volume": 99}}}]
        line["applied_routines"] = [0]
        if index in held_out:
            line["messages"] = [{"role": "user", "text": "Set the TV volume to 99."},
                                {"role": "assistant", "text": "TV volume at 99."}]
        lines.append(line)
    write_jsonl_atomic(copy / "dialogs_clean.jsonl", lines)

    def distilled(data: Path) -> dict:
        train = load_split(data, "train")
        return distilled_for(mine_profiles(train), train, 3, seed=0)

    original = distilled(synthetic_data)
    assert any(original.values())
    assert distilled(copy) == original
