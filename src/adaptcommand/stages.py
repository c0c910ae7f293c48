"""Run a job's stages in order, skip the ones a previous run finished, and show one overall
progress line (stage, done/total, elapsed, ETA); when the output is not a terminal (a log file,
CI), one plain line as each stage starts and ends instead, since a redrawn bar never reaches a log.

A stage is recorded in `OUT/stages.json` when it finishes, with its measured wall and CPU
seconds (CPU time sizes a plan on a shared machine; the load average is recorded with them) and
the fingerprint of the plan it ran under; started again under the same plan, a recorded stage whose
output still exists is skipped without loading anything. The ETA adds each pending stage's
estimate (the plan's `stage_seconds`, matched by the longest stage-name prefix, else the mean
measured time of finished stages of the same kind), scaled by how far this machine's measured
times have been from the estimates so far.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from adaptcommand.errors import DataError
from adaptcommand.fileio import write_json_atomic

STAGES_FILE = "stages.json"


@dataclass(frozen=True)
class Stage:
    """One unit of work; `output` is the file whose presence shows it finished; `always`
    stages (cheap ones that read every other stage's output, like the report) always run."""

    name: str  # "<kind> <what>", e.g. "train profile+unified", "eval cold_start/merged"
    work: Callable[[], Any]
    output: Path | None = None
    always: bool = False

    @property
    def kind(self) -> str:
        return self.name.split(" ", 1)[0]


def estimate(stage: Stage, stage_seconds: Mapping[str, float],
             measured: Mapping[str, float]) -> float | None:
    """The expected seconds of `stage`: the longest `stage_seconds` key its name starts with,
    else the mean measured time of finished stages of its kind, else None."""
    keys = [key for key in stage_seconds if stage.name.startswith(key)]
    if keys:
        return stage_seconds[max(keys, key=len)]
    same_kind = [s for name, s in measured.items() if name.split(" ", 1)[0] == stage.kind]
    return sum(same_kind) / len(same_kind) if same_kind else None


def eta_seconds(pending: Sequence[Stage], stage_seconds: Mapping[str, float],
                measured: Mapping[str, float], ran: Sequence[tuple[float | None, float]]
                ) -> float | None:
    """Seconds left: the pending stages' estimates times the ratio measured/estimated of the
    stages run so far (`ran`: (estimate, measured) pairs); None while any estimate is unknown."""
    estimates = [estimate(stage, stage_seconds, measured) for stage in pending]
    if any(e is None for e in estimates):
        return None
    known = [(e, m) for e, m in ran if e]
    scale = sum(m for _, m in known) / sum(e for e, _ in known) if known else 1.0
    return scale * sum(e for e in estimates if e is not None)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{rest:02d}s"


def read_record(path: Path) -> dict[str, Any]:
    """The stages a previous run recorded ({} when none)."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"cannot parse: {exc} (delete it to rerun every stage)", path=path,
                        line=exc.lineno) from None
    return record if isinstance(record, dict) else {}


def run_stages(stages: Sequence[Stage], out: Path, fingerprint: str, console: Console,
               stage_seconds: Mapping[str, float] | None = None, one_line: bool = True
               ) -> dict[str, float]:
    """Run `stages` in order (see the module docstring); returns the measured seconds of every
    finished stage, earlier runs' included. `one_line=False` prints a rule per stage instead of
    the progress line (the stages then show their own progress)."""
    stage_seconds = dict(stage_seconds or {})
    record_path = out / STAGES_FILE
    recorded = read_record(record_path)
    same_plan = recorded.get("fingerprint") == fingerprint
    measured: dict[str, float] = dict(recorded.get("seconds", {})) if same_plan else {}
    cpu: dict[str, float] = dict(recorded.get("cpu_seconds", {})) if same_plan else {}
    ran: list[tuple[float | None, float]] = []
    log = one_line and not console.is_terminal
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("stages"), TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                  console=console, disable=not one_line or log) as progress:
        task = progress.add_task("", total=len(stages), eta="?")
        for index, stage in enumerate(stages):
            left = eta_seconds(stages[index:], stage_seconds, measured, ran)
            progress.update(task, description=stage.name, eta=format_seconds(left))
            if (not stage.always and stage.name in measured
                    and (stage.output is None or stage.output.exists())):
                progress.advance(task)
                continue
            if log:
                console.print(f"[{index + 1}/{len(stages)}] {stage.name} started, "
                              f"ETA {format_seconds(left)}", highlight=False)
            elif not one_line:
                console.rule(f"[bold]{stage.name}")
            expected = estimate(stage, stage_seconds, measured)
            start, start_cpu = time.perf_counter(), time.process_time()
            stage.work()
            seconds = time.perf_counter() - start
            cpu[stage.name] = round(time.process_time() - start_cpu, 1)
            ran.append((expected, seconds))
            measured[stage.name] = round(seconds, 1)
            write_json_atomic(record_path, {"fingerprint": fingerprint, "seconds": measured,
                                            "cpu_seconds": cpu, "load_average": os.getloadavg()})
            if log or not one_line:
                console.print(f"[green]{stage.name} done[/] in {seconds:.0f} s", highlight=False)
            progress.advance(task)
        progress.update(task, description="done", eta="0m00s")
    return measured
