"""The stage runner writes a log a person can follow when its output is not a terminal, redoes
exactly the stages whose fingerprint changed, and with several jobs runs independent stages at
once, each after the stages it needs."""

from __future__ import annotations

import io
import json
import time
from functools import partial
from pathlib import Path

import pytest
from rich.console import Console

from adaptcommand.errors import DataError
from adaptcommand.stages import STAGES_FILE, Stage, chain_seconds, eta_seconds, run_stages


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


def _meet(folder: str, me: str, other: str) -> None:
    """Leave a mark, then wait for the other stage's: only stages that run at once both
    finish (run one after the other, the first times out)."""
    import torch

    here = Path(folder)
    (here / me).write_text(str(torch.get_num_threads()))
    deadline = time.monotonic() + 60
    while not (here / other).exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{me} ran alone")
        time.sleep(0.05)


def _after(folder: str, *needed: str) -> None:
    here = Path(folder)
    assert all((here / name).exists() for name in needed), "started before what it needs"
    (here / "after").write_text("ok")


def _fail(message: str) -> None:
    raise DataError(message, path="bad.jsonl", line=3, field="text")


def test_two_jobs_run_independent_stages_at_once_and_wait_for_what_a_stage_needs(
        tmp_path: Path) -> None:
    import torch

    folder = str(tmp_path)
    stages = [Stage("train a", partial(_meet, folder, "a", "b")),
              Stage("train b", partial(_meet, folder, "b", "a")),
              Stage("eval a", partial(_after, folder, "a", "b"), needs=("train a", "train b"))]
    console = Console(file=io.StringIO(), force_terminal=False)

    run_stages(stages, tmp_path, console, {"train": 1.0, "eval": 1.0}, jobs=2)

    assert (tmp_path / "after").read_text() == "ok"
    share = max(1, torch.get_num_threads() // 2)  # each process its share of the threads
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text() == str(share)
    record = json.loads((tmp_path / STAGES_FILE).read_text())
    assert set(record["seconds"]) == {"train a", "train b", "eval a"}
    assert record["jobs"] == 2 and record["wall_seconds"] > 0


def test_a_failed_stage_stops_what_needs_it_and_keeps_what_finished(tmp_path: Path) -> None:
    folder = str(tmp_path)
    stages = [Stage("train bad", partial(_fail, "no text")),
              Stage("train a", partial(_after, folder)),
              Stage("eval bad", partial(_after, folder), needs=("train bad",))]
    log = io.StringIO()

    with pytest.raises(DataError, match=r"bad\.jsonl:3: field 'text': no text"):
        run_stages(stages, tmp_path, Console(file=log, force_terminal=False), jobs=2)

    assert "train bad failed" in log.getvalue()
    assert set(json.loads((tmp_path / STAGES_FILE).read_text())["seconds"]) == {"train a"}


def test_stages_that_need_a_later_or_unknown_stage_are_refused(tmp_path: Path) -> None:
    stages = [Stage("eval a", print, needs=("train a",)), Stage("train a", print)]
    with pytest.raises(ValueError, match="not an earlier stage"):
        run_stages(stages, tmp_path, Console(file=io.StringIO()), jobs=2)


def test_the_longest_chain_of_estimated_work_goes_first() -> None:
    stages = [Stage("train short", print), Stage("train long", print),
              Stage("eval long", print, needs=("train long",)),
              Stage("report", print, needs=("train short", "eval long"))]
    chain = chain_seconds(stages, {"train short": 10, "train long": 30, "eval": 5,
                                   "report": 1}, {})
    assert chain == {"report": 1, "eval long": 6, "train long": 36, "train short": 11}


def test_the_eta_shares_work_among_jobs_but_waits_for_the_longest_chain() -> None:
    stages = [Stage("train a", print), Stage("train b", print), Stage("eval a", print)]
    estimates = {"train": 100.0, "eval": 20.0}
    ran = [(1.0, 0.01), (50.0, 100.0)]  # the 1-second data stage says nothing of the speed
    assert eta_seconds(stages, estimates, {}, ran) == 2 * 220
    assert eta_seconds(stages, estimates, {}, ran, jobs=2) == 2 * 110
    chain = {"train a": 120.0, "train b": 100.0, "eval a": 20.0}
    assert eta_seconds(stages[::2], estimates, {}, ran, jobs=2, chain=chain) == 2 * 120
