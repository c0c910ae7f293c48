"""The stage runner writes a log a person can follow when its output is not a terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from adaptcommand.stages import Stage, run_stages


def test_a_log_gets_one_line_as_each_stage_starts_and_ends(tmp_path: Path) -> None:
    done: list[str] = []
    stages = [Stage(f"train {name}", lambda name=name: done.append(name)) for name in "ab"]
    log = io.StringIO()
    console = Console(file=log, force_terminal=False, width=80)

    run_stages(stages, tmp_path, "plan", console, {"train": 2.0})

    lines = log.getvalue().splitlines()
    assert done == ["a", "b"]
    assert lines[0] == "[1/2] train a started, ETA 0m04s"  # both stages' estimates
    assert lines[1].startswith("train a done in ")
    assert lines[2].startswith("[2/2] train b started, ETA ")
    assert lines[3].startswith("train b done in ") and len(lines) == 4
