"""Run a job's stages in order, skip the ones a previous run finished, and show one overall
progress line (stage, done/total, elapsed, ETA); when the output is not a terminal (a log file,
CI), one plain line as each stage starts and ends instead, since a redrawn bar never reaches a log.

A stage is recorded in `OUT/stages.json` when it finishes, with its measured wall and CPU
seconds (CPU time sizes a plan on a shared machine; the load average is recorded with them) and
its fingerprint (a digest of everything its work depends on, its inputs' fingerprints included).
Started again, a recorded stage whose fingerprint is unchanged and whose output still exists is
skipped without loading anything; one whose fingerprint changed is redone after its previous
outputs are removed, as make or dvc would: a changed setting reruns the stages it feeds, not the
whole job. The ETA adds the estimate of each stage still to run (the plan's `stage_seconds`,
matched by the longest stage-name prefix, else the mean measured time of finished stages of the
same kind), scaled by how far this machine's measured times have been from the estimates so far.
"""

from __future__ import annotations

import json
import os
import shutil
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
    stages (cheap ones that read every other stage's output, like the report) always run.
    `clears`: what the work writes, removed before a changed stage is redone (its work would
    otherwise resume from, or refuse, outputs made with other settings)."""

    name: str  # "<kind> <what>", e.g. "train profile+unified", "eval cold_start/merged"
    work: Callable[[], Any]
    output: Path | None = None
    always: bool = False
    fingerprint: str = ""
    clears: tuple[Path, ...] = ()

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


def recorded_fingerprints(record: Mapping[str, Any],
                          legacy: tuple[str, Mapping[str, str]] | None) -> dict[str, str]:
    """Each recorded stage's fingerprint. A record written before stages had their own holds
    one plan fingerprint: when it is `legacy`'s (the same plan), each stage gets the
    fingerprint `legacy` gives it (what it was under that plan), else all count as changed."""
    if "fingerprints" in record:
        return dict(record["fingerprints"])
    plan, then = legacy or ("", {})
    same_plan = bool(plan) and record.get("fingerprint") == plan
    return {name: then.get(name, "") if same_plan else "" for name in record.get("seconds", {})}


def clear(stage: Stage) -> None:
    """Remove what `stage` wrote under other settings."""
    for path in stage.clears:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def run_stages(stages: Sequence[Stage], out: Path, console: Console,
               stage_seconds: Mapping[str, float] | None = None, one_line: bool = True,
               legacy: tuple[str, Mapping[str, str]] | None = None) -> dict[str, float]:
    """Run `stages` in order (see the module docstring); returns the measured seconds of every
    finished stage, earlier runs' included. `one_line=False` prints a rule per stage instead of
    the progress line (the stages then show their own progress); `legacy`: (plan fingerprint,
    stage fingerprints under it), see recorded_fingerprints."""
    stage_seconds = dict(stage_seconds or {})
    record_path = out / STAGES_FILE
    recorded = read_record(record_path)
    fingerprints = recorded_fingerprints(recorded, legacy)
    measured: dict[str, float] = dict(recorded.get("seconds", {}))
    cpu: dict[str, float] = dict(recorded.get("cpu_seconds", {}))
    ran: list[tuple[float | None, float]] = []
    log = one_line and not console.is_terminal

    def finished(stage: Stage) -> bool:
        return (not stage.always and fingerprints.get(stage.name) == stage.fingerprint
                and stage.name in measured
                and (stage.output is None or stage.output.exists()))

    def save() -> None:
        write_json_atomic(record_path, {"fingerprints": fingerprints, "seconds": measured,
                                        "cpu_seconds": cpu, "load_average": os.getloadavg()})

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("stages"), TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                  console=console, disable=not one_line or log) as progress:
        task = progress.add_task("", total=len(stages), eta="?")
        for index, stage in enumerate(stages):
            left = eta_seconds([s for s in stages[index:] if not finished(s)], stage_seconds,
                               measured, ran)
            progress.update(task, description=stage.name, eta=format_seconds(left))
            if finished(stage):
                progress.advance(task)
                continue
            if fingerprints.get(stage.name, stage.fingerprint) != stage.fingerprint:
                clear(stage)
                measured.pop(stage.name, None)
                cpu.pop(stage.name, None)
            # recorded as it starts: killed half-way, it resumes under the same settings and
            # starts clean under others
            fingerprints[stage.name] = stage.fingerprint
            save()
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
            save()
            if log or not one_line:
                console.print(f"[green]{stage.name} done[/] in {seconds:.0f} s", highlight=False)
            progress.advance(task)
        progress.update(task, description="done", eta="0m00s")
    return measured
