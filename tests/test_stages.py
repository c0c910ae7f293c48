"""The stage runner writes a log a person can follow when its output is not a terminal, and
redoes exactly the stages whose fingerprint changed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from adaptcommand.stages import STAGES_FILE, Stage, run_stages


def test_a_log_gets_one_line_as_each_stage_starts_and_ends(tmp_path: Path) -> None:
    done: list[str] = []
    stages = [Stage(f"train {name}", lambda name=name: done.append(name)) for name in "ab"]
    log = io.StringIO()
    console = Console(file=log, force_terminal=False, width=80)

    run_stages(stages, tmp_path, console, {"train": 2.0})

    lines = log.getvalue().splitlines()
    assert done == ["a", "b"]
    assert lines[0] == "[1/2] train a started, ETA 0m04s"  # both stages' estimates
    assert lines[1].startswith("train a done in ")
    assert lines[2].startswith("[2/2] train b started, ETA ")
    assert lines[3].startswith("train b done in ") and len(lines) == 4


def _writing_stages(tmp_path: Path, fingerprints: dict[str, str], done: list[str]) -> list[Stage]:
    """Stages a and b, each writing OUT/<name>/result and recording that it ran."""
    def work(name: str) -> None:
        folder = tmp_path / name
        assert not (folder / "stale").exists(), "a redone stage must start from a clean slate"
        folder.mkdir(exist_ok=True)
        (folder / "result").write_text(fingerprints[name])
        done.append(name)

    return [Stage(f"train {name}", lambda name=name: work(name), tmp_path / name / "result",
                  fingerprint=fingerprints[name], clears=(tmp_path / name,)) for name in "ab"]


def test_a_stage_whose_fingerprint_changed_is_redone_from_a_clean_slate(tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    done: list[str] = []
    run_stages(_writing_stages(tmp_path, {"a": "1", "b": "1"}, done), tmp_path, console)
    (tmp_path / "b" / "stale").write_text("left by the old settings")

    run_stages(_writing_stages(tmp_path, {"a": "1", "b": "2"}, done), tmp_path, console)

    assert done == ["a", "b", "b"]
    assert (tmp_path / "b" / "result").read_text() == "2"
    record = json.loads((tmp_path / STAGES_FILE).read_text())
    assert record["fingerprints"] == {"train a": "1", "train b": "2"}
    run_stages(_writing_stages(tmp_path, {"a": "1", "b": "2"}, done), tmp_path, console)
    assert done == ["a", "b", "b"]


def test_a_record_of_one_plan_fingerprint_is_adopted_only_for_the_same_plan(
        tmp_path: Path) -> None:
    """stages.json written before stages had their own fingerprints: the same plan takes each
    stage's fingerprint under it (here b's has changed since), another plan redoes all."""
    console = Console(file=io.StringIO(), force_terminal=False)
    done: list[str] = []
    stages = _writing_stages(tmp_path, {"a": "1", "b": "2"}, done)
    for stage in stages:
        stage.work()
    legacy = {"fingerprint": "plan", "seconds": {"train a": 1.0, "train b": 2.0}}
    (tmp_path / STAGES_FILE).write_text(json.dumps(legacy))
    (tmp_path / "b" / "stale").write_text("left by the old settings")

    run_stages(stages, tmp_path, console, legacy=("plan", {"train a": "1", "train b": "1"}))
    assert done == ["a", "b", "b"]
    (tmp_path / STAGES_FILE).write_text(json.dumps(legacy))
    (tmp_path / "a" / "stale").write_text("left by the old settings")
    run_stages(stages, tmp_path, console, legacy=("another plan", {"train a": "1"}))
    assert done == ["a", "b", "b", "a", "b"]


def test_a_redo_killed_half_way_resumes_instead_of_starting_clean_again(tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    run_stages(_writing_stages(tmp_path, {"a": "1", "b": "1"}, []), tmp_path, console)
    progress = tmp_path / "a" / "epoch1"

    def killed() -> None:
        progress.parent.mkdir()  # cleared: the old settings' outputs are gone
        progress.write_text("half of the new run")
        raise KeyboardInterrupt

    changed = [Stage("train a", killed, tmp_path / "a" / "result", fingerprint="2",
                     clears=(tmp_path / "a",))]
    with pytest.raises(KeyboardInterrupt):
        run_stages(changed, tmp_path, console)
    resumed: list[bool] = []
    again = [Stage("train a", lambda: resumed.append(progress.exists()),
                   tmp_path / "a" / "result", fingerprint="2", clears=(tmp_path / "a",))]
    run_stages(again, tmp_path, console)
    assert resumed == [True]
