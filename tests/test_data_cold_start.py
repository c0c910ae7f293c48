"""Cold-start splits: held-out personas, their profile sessions then their evaluated sessions,
validation, CLI and training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.data.io import load_split, load_splits
from adaptcommand.data.prepare import OUTPUT_FILES, prepare_from_source
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.data.splits import SplitConfig, compute_splits, held_out_personas
from adaptcommand.data.synth import synthesize
from adaptcommand.data.validation import validate_splits
from adaptcommand.errors import DataError

PERSONAS = [f"persona_{i:03d}" for i in range(10)]


def dialogues(sessions: dict[str, int]) -> list[CleanDialogue]:
    return [CleanDialogue.model_validate({"persona_id": pid, "messages": [
        {"role": "user", "text": f"hi {s}"}, {"role": "assistant", "text": "ok"}]})
        for pid, n in sessions.items() for s in range(n)]


def held_out(n: int, seed: int = 0) -> list[str]:
    return held_out_personas(PERSONAS, SplitConfig(cold_start_personas=n, seed=seed))


def test_held_out_choice_is_seeded_deterministic_and_not_the_last_ones() -> None:
    assert held_out(3) == held_out(3) and len(set(held_out(3))) == 3
    assert held_out(3) != PERSONAS[-3:]
    assert {tuple(held_out(3, seed)) for seed in range(5)} != {tuple(held_out(3))}
    assert held_out(3) == sorted(held_out(3), key=PERSONAS.index)  # in file order
    assert held_out_personas(PERSONAS[::-1], SplitConfig(cold_start_personas=3)) == \
        held_out(3)[::-1]  # the choice does not depend on file order
    assert held_out(0) == []


def test_held_out_personas_keep_profile_then_evaluated_sessions() -> None:
    data = dialogues({"a": 20, "b": 20, "c": 7})
    config = SplitConfig(cold_start_personas=2, cold_start_sessions=10, seed=1)
    splits = compute_splits(data, config)
    out = [pid for pid, entry in splits.items() if "cold_start" in entry]
    assert len(out) == 2
    (kept,) = set(splits) - set(out)
    assert splits[kept] == compute_splits(data, SplitConfig())[kept]  # others unchanged
    assert set(splits[kept]) == {"train", "val", "test"}  # no `online` split any more
    start = {"a": 0, "b": 20, "c": 40}
    evaluated = {"a": list(range(3, 13)), "b": list(range(23, 33)), "c": list(range(43, 47))}
    for pid in out:
        assert splits[pid] == {"train": [], "val": [], "test": [],
                               "cold_start_profile": list(range(start[pid], start[pid] + 3)),
                               "cold_start": evaluated[pid]}
    checks = validate_splits(data, splits, config)
    assert [c.name for c in checks][-1] == "cold_start"
    assert all(c.passed for c in checks), [c.errors for c in checks]
    assert not [w for c in checks for w in c.warnings]  # held-out is not "thin"


def test_validation_refuses_a_held_out_persona_in_training() -> None:
    data = dialogues({"a": 10, "b": 10})
    config = SplitConfig(cold_start_personas=1, cold_start_sessions=3)
    splits = compute_splits(data, config)
    (pid,) = [p for p, e in splits.items() if "cold_start" in e]
    splits[pid]["train"] = [splits[pid]["cold_start"][-1] + 1]
    errors = {c.name: c.errors for c in validate_splits(data, splits, config)}
    assert errors["cold_start"] == [f"{pid}: held out for cold start but has train sessions"]
    splits[pid]["train"], splits[pid]["cold_start"] = [], splits[pid]["cold_start"][1:]
    errors = {c.name: c.errors for c in validate_splits(data, splits, config)}
    assert errors["cold_start"] == [
        f"{pid}.cold_start: not the 3 sessions after its profile sessions in time order"]
    # a profile session that is also evaluated: the peeking the split exists to prevent
    splits[pid]["cold_start"] = [splits[pid]["cold_start_profile"][-1], *splits[pid]["cold_start"]]
    errors = {c.name: c.errors for c in validate_splits(data, splits, config)}
    assert any("cold_start_profile and" in e for e in errors["no_overlap"])
    assert errors["temporal_order"] == [
        f"{pid}: a cold_start_profile session is not before every cold_start session"]
    splits[pid]["cold_start"] = splits[pid]["cold_start"][1:]
    # an ordinary persona's unassigned sessions are still an error
    other = next(p for p in splits if p != pid)
    splits[other]["test"] = []
    assert "sessions in no split" in " ".join(
        {c.name: c.errors for c in validate_splits(data, splits, config)}["indices_valid"])


def test_holding_out_every_persona_is_refused() -> None:
    with pytest.raises(DataError, match="cannot hold out 2 personas.*at least one must remain"):
        compute_splits(dialogues({"a": 5, "b": 5}), SplitConfig(cold_start_personas=2))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cold_raw")
    synthesize(5, 12, 0, root)
    return root


def files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in OUTPUT_FILES}


def test_without_held_out_personas_the_outputs_do_not_change(raw: Path, tmp_path: Path) -> None:
    prepare_from_source(raw, tmp_path / "default")
    prepare_from_source(raw, tmp_path / "zero",
                        SplitConfig(cold_start_personas=0, cold_start_sessions=3, seed=7))
    assert files(tmp_path / "default") == files(tmp_path / "zero")
    assert b"cold_start" not in b"".join(files(tmp_path / "default").values())


def test_prepare_cli_writes_the_cold_start_split(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = CliRunner().invoke(app, ["data", "prepare", "--source", str(raw), "--out", str(out),
                                      "--cold-start-personas", "2", "--cold-start-sessions", "4",
                                      "--cold-start-profile-sessions", "2"])
    assert result.exit_code == 0, result.output
    assert "cold_start" in result.output and "validation: passed" in result.output
    stats = json.loads((out / "split_stats.json").read_text())
    held = stats["held_out_personas"]
    assert len(held) == 2 and stats["config"]["cold_start_sessions"] == 4
    assert stats["config"]["cold_start_profile_sessions"] == 2
    assert stats["cold_start"]["sessions"] == 8 and stats["cold_start"]["per_persona"]["min"] == 4
    assert stats["cold_start_profile"]["sessions"] == 4
    assert stats["train"]["per_persona"]["min"] > 0  # over the personas still trained
    assert json.loads((out / "validation_report.json").read_text())["passed"]

    cold, train = load_split(out, "cold_start"), load_split(out, "train")
    profile = load_split(out, "cold_start_profile")
    lines = (out / "dialogs_clean.jsonl").read_text().splitlines()
    for pid in held:
        ids = [json.loads(line)["session_id"] for line in lines
               if json.loads(line)["persona_id"] == pid]
        assert [d.session_id for d in profile[pid]] == ids[:2]
        assert [d.session_id for d in cold[pid]] == ids[2:6] and train[pid] == []
    assert all(not cold[pid] and train[pid] for pid in cold if pid not in held)
    assert all(not entry["cold_start"] for pid, entry in load_splits(out).items()
               if pid not in held)


def test_prepare_cli_refuses_holding_out_all_personas(raw: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "prepare", "--source", str(raw), "--out",
                                      str(tmp_path / "data"), "--cold-start-personas", "5"])
    assert result.exit_code != 0 and "cannot hold out 5 personas" in str(result.exception)
    assert not (tmp_path / "data").exists()
    result = CliRunner().invoke(app, ["data", "prepare", "--source", str(raw), "--out",
                                      str(tmp_path / "data"), "--cold-start-sessions", "0"])
    assert result.exit_code != 0 and "--cold-start-sessions" in str(result.exception)


def test_held_out_persona_is_never_trained(raw: Path, tmp_path: Path) -> None:
    from adaptcommand.training import recipes
    from adaptcommand.training.config import TrainingConfig

    data = tmp_path / "data"
    prepare_from_source(raw, data, SplitConfig(cold_start_personas=1))
    (cold,) = json.loads((data / "split_stats.json").read_text())["held_out_personas"]
    config = TrainingConfig().updated({"model.name": "tiny-random", "optimizer.epochs": 1,
                                       "optimizer.batch_size": 4, "data.max_length": 96,
                                       "early_stopping.patience": None})
    per_user = recipes.run_training("per-user", config, data, tmp_path / "per_user",
                                   show_progress=False)
    assert cold not in per_user["adapters"] and len(per_user["adapters"]) == 4
    assert not (tmp_path / "per_user" / cold).exists()
    unified = recipes.run_training("unified", config, data, tmp_path / "unified",
                                  show_progress=False)
    record = unified["adapters"]["unified"]
    assert cold not in record["personas"] and len(record["personas"]) == 4
    # unified learns from exactly the per-user adapters' examples: none of the held-out persona
    assert record["train_examples"] == sum(
        r["train_examples"] for r in per_user["adapters"].values())


def test_probe_follows_the_configured_split(raw: Path, tmp_path: Path) -> None:
    from adaptcommand.evaluation.probe import load_routines
    from adaptcommand.evaluation.runs import Scope

    data = tmp_path / "data"
    prepare_from_source(raw, data, SplitConfig(cold_start_personas=2))
    held = json.loads((data / "split_stats.json").read_text())["held_out_personas"]
    assert list(load_routines(Scope(data=data), "cold_start")) == held
    assert sorted(load_routines(Scope(data=data), "test")) == sorted(
        set(load_splits(data)) - set(held))
    assert len(load_routines(Scope(data=data))) == 5  # no split: every persona
    chosen = load_routines(Scope(data=data, personas=[held[0]]), "test")
    assert list(chosen) == [held[0]]  # --personas still wins
