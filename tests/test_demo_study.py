"""The study on tiny-random: every kind of profile arm (base model + profile line, adapters
trained and evaluated with it, distilled adapters, new users' mined profiles with merged
adapters) runs end to end into one report, and a second run redoes no work."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from adaptcommand import demo as demo_module
from adaptcommand.arms import COLD_START, REGISTRY
from adaptcommand.cli.options import deprecations_shown
from adaptcommand.data.io import load_splits
from adaptcommand.data.synth.config import SynthConfig
from adaptcommand.demo import DemoPlan, demo_stages, plan_arms, run_demo
from adaptcommand.errors import DataError
from adaptcommand.routines.mining import MiningSettings
from adaptcommand.stages import STAGES_FILE
from adaptcommand.study import DEFAULT_STUDY, load_study
from adaptcommand.training.config import FLAT_NAMES
from test_demo import tiny_plan
from test_training_engine import single_thread  # noqa: F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
STUDY_ARMS = ("profile", "mined-profile", "profile+unified", "distilled-per-user",
              "cold_start/profile", "cold_start/mined-profile", "cold_start/merged+profile")


def tiny_study() -> DemoPlan:
    """The demo test's tiny plan on 2 trained + 1 new user, with two pairs of context and many
    implicit requests; 10 sessions, so that a routine of the train split comes back in a test
    session and the profile line has something to say."""
    base = tiny_plan()
    return replace(
        base, personas=2, sessions=10, cold_start_personas=1, cold_start_profile_sessions=3,
        training={**base.training, "prompt.max_context_messages": 2},
        evaluation={**base.evaluation, "evaluation.skip_assistant_turns": 0,
                    "prompt.max_context_messages": 2},
        arm_training={"distilled-per-user": {"data.distill_examples_per_routine": 1}},
        synth=SynthConfig(value_free_share=0.5), arms=STUDY_ARMS,
        stage_seconds={"train": 5.0, "eval": 3.0},
    )


def test_study_arms_bring_what_they_build_on_and_each_groups_baseline() -> None:
    keys = [arm.key for arm in plan_arms(tiny_study(), all_arms=False)]
    assert keys == ["baseline", "profile", "mined-profile", "profile+unified",
                    "profile+per-user", "distilled-per-user", "cold_start/baseline",
                    "cold_start/profile", "cold_start/mined-profile",
                    "cold_start/merged+profile"]


def test_tiny_study_runs_end_to_end_and_resumes(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_demo(tmp_path, replace(tiny_study(), jobs=2), study=True)  # stages in 2 processes

    compare = json.loads((report / "compare.json").read_text())
    rows = {(row["group"], row["arm"]) for row in compare["overview"]}
    assert rows == {(arm.split, arm.name) for arm in plan_arms(tiny_study(), False)}
    # Profile arms carry the same prompt options in training and evaluation.
    for arm in ("profile+unified", "profile+per-user"):
        results = json.loads((tmp_path / "runs" / arm / "results.json").read_text())
        manifest = json.loads((tmp_path / "adapters" / arm / "manifest.json").read_text())
        for option in ("profile", "context_line"):
            trained = manifest["config"]["prompt"][option]
            assert results["config"]["prompt"][option] == trained, option
        assert manifest["config"]["prompt"]["profile"] == "line"
    distilled = json.loads((tmp_path / "runs" / "distilled-per-user" / "results.json")
                           .read_text())
    assert "profile" not in distilled["config"]["prompt"]  # no profile line at evaluation
    # The base arm's profiles are mined from train; new users' grow with the sessions seen
    # (mined at evaluation before each session), so no split is mined for them up front.
    mined = json.loads((tmp_path / "profiles" / "train" / "mining.json").read_text())
    assert mined["split"] == "train"
    assert not (tmp_path / "profiles" / "cold_start_profile").exists()
    cold = json.loads((tmp_path / "runs" / COLD_START / "profile" / "results.json").read_text())
    new_users = {pid for pid, entry in load_splits(tmp_path / "data").items()
                 if entry["cold_start"]}
    assert set(cold["per_persona"]) == new_users
    assert cold["config"]["profile"]["source"] == "growing" and cold["by_sessions_seen"]
    assert "personal_recall_implicit" in cold["metrics"]
    # The mined profile answers alone: same turns as the arms that read it, no model.
    for group, reader in (("", "profile"), (f"{COLD_START}/", f"{COLD_START}/profile")):
        mined_run = json.loads((tmp_path / "runs" / f"{group}mined-profile" / "results.json")
                               .read_text())
        read = json.loads((tmp_path / "runs" / reader / "results.json").read_text())
        assert mined_run["arm"] == "mined-profile"
        assert mined_run["counts"] == read["counts"]
        probe = json.loads((tmp_path / "runs" / f"{group}mined-profile" / "probe.json")
                           .read_text())
        assert probe["arm"] == "mined-profile" and "param_recall" in probe["metrics"]

    order = [row["arm"] for row in compare["overview"] if row["group"] == "test"]
    assert order == [arm.name for arm in plan_arms(tiny_study(), False) if arm.split == "test"]
    summary = (report / "summary.md").read_text()
    assert "## Arms" in summary and REGISTRY["distilled-per-user"].description in summary
    study = (report / "study.md").read_text()
    for group in ("test", COLD_START):
        assert f"](study_{group}.png)" in study
        assert (report / f"study_{group}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for arm in plan_arms(tiny_study(), False):
        assert f"| {arm.name} |" in study, arm.key
    tokens = {line.split("|")[1].strip(): float(line.split("|")[-2]) for line in
              study.split("## cold_start")[0].splitlines()
              if line.startswith("| ") and not line.startswith("| arm")}
    assert tokens["baseline"] == 0 and tokens["profile"] > tokens["distilled-per-user"] > 0
    line = "Prompt tokens saved by distilled-per-user against profile+per-user: "
    saved = float(study.split(line)[1].split(" per turn")[0])
    assert saved == pytest.approx(tokens["profile+per-user"] - tokens["distilled-per-user"],
                                  abs=0.11)  # the table's values are rounded to 0.1

    recorded = json.loads((tmp_path / STAGES_FILE).read_text())["seconds"]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished stage ran again")

    for name in ("evaluate_arm", "run_probe", "evaluate_profile_answers", "run_profile_probe",
                 "run_training", "merge_adapters", "mine_data", "_prepare_data"):
        monkeypatch.setattr(demo_module, name, refuse)
    run_demo(tmp_path, tiny_study(), study=True)
    again = json.loads((tmp_path / STAGES_FILE).read_text())["seconds"]
    assert {k: v for k, v in again.items() if k != "report"} == \
        {k: v for k, v in recorded.items() if k != "report"}  # the report always reruns


def test_the_study_config_is_a_valid_plan_of_the_required_size() -> None:
    plan = load_study(ROOT / DEFAULT_STUDY)
    keys = {arm.key for arm in plan_arms(plan, all_arms=False)}
    assert plan.personas >= 12 and plan.cold_start_personas >= 4 and plan.sessions >= 20
    assert {"baseline", "unified", "per-user", "hybrid", "profile", "profile+unified",
            "profile+per-user", "profile+hybrid", "distilled-per-user", "distilled-hybrid",
            "oppu", "cold_start/profile", "cold_start/merged+profile",
            "cold_start/merged"} <= keys
    assert plan.synth is not None and plan.synth.value_free_share >= 0.2


def test_a_bad_study_config_names_file_and_field(tmp_path: Path) -> None:
    raw = json.loads((ROOT / DEFAULT_STUDY).read_text())
    for change, field in (({"arms": ["baseline", "nope"]}, "arms.nope"),
                          ({"training": {"optimizer.epochs": 0}}, "training.optimizer.epochs"),
                          ({"evaluation": {"generation.max_new_tokens": "x"}},
                           "evaluation.generation.max_new_tokens"),
                          ({"arm_training": {"cluster": {"cluster.k": 2}}},
                           "arm_training.cluster"),
                          ({"arm_training": {**raw["arm_training"],
                                             "distilled-hybrid": {"optimizer.epochs": 0}}},
                           "arm_training.distilled-hybrid.optimizer.epochs"),
                          ({"cold_start_profile_sessions": 2}, "cold_start_profile_sessions")):
        path = tmp_path / "study.json"
        path.write_text(json.dumps({**raw, **change}))
        with pytest.raises(DataError, match=field.replace(".", r"\.")) as error:
            load_study(path)
        assert str(path) in str(error.value)



def test_a_plans_fingerprint_counts_training_keys_by_place_not_spelling() -> None:
    plan = load_study(ROOT / DEFAULT_STUDY)
    flat = replace(plan, training={FLAT_NAMES[key]: value
                                   for key, value in plan.training.items()})
    assert "optimizer.epochs" in plan.training and "epochs" in flat.training
    assert flat.fingerprint() == plan.fingerprint()
    assert replace(plan, training={**plan.training, "optimizer.epochs": 2}).fingerprint() \
        != plan.fingerprint()


def test_changing_one_arms_training_redoes_that_arm_and_the_arms_built_on_it_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = load_study(ROOT / DEFAULT_STUDY)
    extra = {**plan.arm_training.get("profile+unified", {}), "optimizer.epochs": 7}
    changed = replace(plan, arm_training={**plan.arm_training, "profile+unified": extra})

    def fingerprints(a_plan: DemoPlan, **options: int) -> dict[str, str]:
        return {stage.name: stage.fingerprint for stage in
                demo_stages(tmp_path, a_plan, plan_arms(a_plan, False), True, **options)}

    before, after = fingerprints(plan), fingerprints(changed)
    assert before.keys() == after.keys()
    assert {name for name in before if before[name] != after[name]} == {
        f"{kind} {arm}" for arm in ("profile+unified", "profile+hybrid")
        for kind in ("train", "eval", "probe")} | {"eval cold_start/profile+unified",
                                                    "probe cold_start/profile+unified"}
    moved = replace(plan, evaluation={**plan.evaluation, "generation.max_new_tokens": 9})
    assert {name for name, value in fingerprints(moved).items() if before[name] != value} == {
        name for name in before if name.split(" ")[0] in ("eval", "probe")}
    new_dialogues = fingerprints(plan, distilled_version=-1)  # the arms that distil, and
    assert {name for name, value in new_dialogues.items() if before[name] != value} == {
        f"{kind} {arm}" for arm in ("profile+unified", "profile+hybrid", "distilled-per-user",
                                    "distilled-hybrid") for kind in ("train", "eval", "probe")
    } | {"eval cold_start/profile+unified", "probe cold_start/profile+unified"}  # its readers
    monkeypatch.setattr(demo_module, "KNOWN_QUESTIONS_VERSION", -1)  # another question rule:
    assert {name for name, value in fingerprints(plan).items() if before[name] != value} == {
        name for name in before if before[name] != after[name]}  # the arm that skips them
    monkeypatch.undo()
    monkeypatch.setattr(demo_module, "MiningSettings", partial(MiningSettings, min_support=2))
    assert {name for name, value in fingerprints(plan).items() if before[name] != value} == \
        set(before) - {"data"}  # profiles feed training, evaluation and probes


def test_a_plans_fingerprint_changes_with_the_profile_miner(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan fingerprint (what stages.json recorded before stages had their own) covered
    the miner: a record of another miner's plan is not adopted."""
    plan = load_study(ROOT / DEFAULT_STUDY)
    before = plan.fingerprint()
    monkeypatch.setattr(demo_module, "MiningSettings", partial(MiningSettings, min_support=2))
    assert plan.fingerprint() != before


def test_a_flat_study_config_says_once_where_its_keys_went(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = json.loads((ROOT / DEFAULT_STUDY).read_text())
    raw["training"] = {FLAT_NAMES[key]: value for key, value in raw["training"].items()}
    path = tmp_path / "old_study.json"
    path.write_text(json.dumps(raw))
    with deprecations_shown(path):
        plan = load_study(path)
    assert plan.fingerprint() == load_study(ROOT / DEFAULT_STUDY).fingerprint()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{path}: flat training-config keys")
    assert "epochs -> optimizer.epochs" in lines[0]


def test_arms_built_on_a_reshaped_unified_adapter_take_its_shape() -> None:
    """A hybrid run must match its starting adapter's rank and modules (load_adapter refuses
    otherwise), so reshaping the unified arm in arm_training reshapes the arms on top of it."""
    every_linear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    plan = replace(tiny_study(), arm_training={
        "unified": {"adapter.target_modules": every_linear, "adapter.dropout": 0.2,
                    "optimizer.epochs": 3},
        "distilled-hybrid": {"adapter.alpha": 32.0}})
    shape = {key: plan.training_config(REGISTRY[key]).adapter for key in (
        "unified", "hybrid", "distilled-hybrid", "profile+unified", "profile+hybrid")}
    assert shape["hybrid"].target_modules == every_linear
    assert shape["hybrid"].dropout != 0.2  # the shape load_adapter checks, nothing else
    assert shape["distilled-hybrid"].target_modules == every_linear
    assert shape["distilled-hybrid"].alpha == 32.0  # its own extras still come last
    assert plan.training_config(REGISTRY["hybrid"]).optimizer.epochs == 1
    assert shape["profile+hybrid"] == shape["profile+unified"]
    assert shape["profile+hybrid"].target_modules == ["q_proj", "v_proj"]


def test_each_study_stage_waits_for_the_stages_it_reads_and_can_run_in_a_worker(
        tmp_path: Path) -> None:
    plan = load_study(ROOT / DEFAULT_STUDY)
    stages = {stage.name: stage for stage in demo_stages(tmp_path, plan,
                                                          plan_arms(plan, False), True)}
    needs = {name: set(stage.needs) for name, stage in stages.items()}
    assert needs["data"] == set()
    assert needs["train unified"] == needs["mine train"] == {"data"}
    assert needs["train distilled-hybrid"] == {"data", "train unified"}
    assert needs["eval oppu"] == {"data", "train hybrid"}
    assert needs["probe oppu"] == {"data", "train hybrid", "eval oppu"}
    assert needs["eval profile"] == {"data", "mine train"}
    assert needs["merge cold_start/merged+profile"] == {"data", "train profile+per-user"}
    assert needs["eval cold_start/profile+unified"] == {"data", "train profile+unified"}
    for stage in stages.values():  # jobs > 1 sends each stage's work to a spawned process
        assert pickle.loads(pickle.dumps(stage.work)).func is stage.work.func
