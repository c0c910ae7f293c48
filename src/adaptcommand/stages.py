"""Run a job's stages in order, skip the ones a previous run finished, and show one overall
progress line (stage, done/total, elapsed, ETA); when the output is not a terminal (a log file,
CI), one plain line as each stage starts and ends instead, since a redrawn bar never reaches a log.

A stage is recorded in `OUT/stages.json` when it finishes, with its measured wall and CPU
seconds (CPU time sizes a plan on a shared machine; the load average is recorded with them, and
the wall time of all runs into OUT so far, which parallel stages make shorter than their sum) and
its fingerprint (a digest of everything its work depends on, its inputs' fingerprints included).
Started again, a recorded stage whose fingerprint is unchanged and whose output still exists is
skipped without loading anything; one whose fingerprint changed is redone after its previous
outputs are removed, as make or dvc would: a changed setting reruns the stages it feeds, not the
whole job. The ETA adds the estimate of each stage still to run (the plan's `stage_seconds`,
matched by the longest stage-name prefix, else the mean measured time of finished stages of the
same kind), scaled by how far this machine's measured times have been from the estimates so far.

With `jobs` > 1, as `make -j`, up to that many stages run at once, each in its own process with
its share of the torch threads: a stage starts once the stages it `needs` are done, the one with
the longest chain of estimated work behind it first. On a small CPU two one-thread processes do
more work per second than one process with two threads (BENCHMARKS.md, "Study stages in
parallel"). A failed stage lets the running ones finish and be recorded, then stops the job.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from contextlib import contextmanager
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

from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.fileio import write_json_atomic

STAGES_FILE = "stages.json"
MIN_SCALING_SECONDS = 10.0  # the shortest estimate the ETA's speed ratio learns from


@dataclass(frozen=True)
class Stage:
    """One unit of work; `output` is the file whose presence shows it finished; `always`
    stages (cheap ones that read every other stage's output, like the report) always run.
    `clears`: what the work writes, removed before a changed stage is redone (its work would
    otherwise resume from, or refuse, outputs made with other settings). `needs`: the names of
    the earlier stages whose outputs it reads; with jobs > 1 it waits for them (run in order,
    the stages' order must satisfy them)."""

    name: str  # "<kind> <what>", e.g. "train profile+unified", "eval cold_start/merged"
    work: Callable[[], Any]
    output: Path | None = None
    always: bool = False
    fingerprint: str = ""
    clears: tuple[Path, ...] = ()
    needs: tuple[str, ...] = ()

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
                measured: Mapping[str, float], ran: Sequence[tuple[float | None, float]],
                jobs: int = 1, chain: Mapping[str, float] | None = None) -> float | None:
    """Seconds left: the pending stages' estimates times the ratio measured/estimated of the
    stages of some length run so far (`ran`: (estimate, measured) pairs), shared by up to
    `jobs` processes but never less than the longest pending `chain` (chain_seconds); None
    while any estimate is unknown."""
    estimates = [estimate(stage, stage_seconds, measured) for stage in pending]
    if any(e is None for e in estimates):
        return None
    # a stage of a few seconds (data, mining) says little about this machine's speed
    known = [(e, m) for e, m in ran if e and e >= MIN_SCALING_SECONDS]
    scale = sum(m for _, m in known) / sum(e for e, _ in known) if known else 1.0
    shared = sum(e for e in estimates if e is not None) / max(1, min(jobs, len(estimates)))
    longest = max((chain[stage.name] for stage in pending), default=0.0) if chain else 0.0
    return scale * max(shared, longest)


def chain_seconds(stages: Sequence[Stage], stage_seconds: Mapping[str, float],
                  measured: Mapping[str, float]) -> dict[str, float]:
    """Each stage's estimated seconds plus those of the longest chain of stages that need it,
    in turn: a parallel run starts the ready stage with the most work behind it first, so the
    long chains (a 3-epoch training, then what starts from it) do not finish last, alone."""
    needed_by: dict[str, list[str]] = {stage.name: [] for stage in stages}
    for stage in stages:
        for need in stage.needs:
            needed_by[need].append(stage.name)
    chain: dict[str, float] = {}
    for stage in reversed(stages):
        own = estimate(stage, stage_seconds, measured) or 0.0
        chain[stage.name] = own + max((chain[name] for name in needed_by[stage.name]),
                                      default=0.0)
    return chain


def check_needs(stages: Sequence[Stage]) -> None:
    """Every stage needs earlier stages only (so the order alone runs them right)."""
    seen: set[str] = set()
    for stage in stages:
        unknown = [name for name in stage.needs if name not in seen]
        if unknown:
            raise ValueError(f"stage {stage.name!r} needs {unknown}, not an earlier stage")
        seen.add(stage.name)


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


class InlineExecutor(Executor):
    """Runs each call as it is submitted, in this process: one job keeps the plain sequential
    run (and the state tests patch) under the same scheduler."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # a failed stage; an interrupt still stops the job at once
            future.set_exception(exc)
        return future


class PoolExecutor(Executor):
    """Stage processes (spawned: fork and torch's threads do not mix) that end with the job:
    terminated when it stops for any reason, killed with it when it is killed (Linux), and
    deaf to Ctrl-C, which the job handles."""

    def __init__(self, jobs: int, threads: int) -> None:
        self.pool = multiprocessing.get_context("spawn").Pool(
            jobs, _start_worker, (threads, list(warnings.filters)))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.pool.apply_async(fn, args, kwargs, callback=future.set_result,
                              error_callback=future.set_exception)
        return future


def _start_worker(threads: int, filters: list[Any]) -> None:
    """A stage process: its share of the threads, the job's warning filters."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":  # PR_SET_PDEATHSIG: SIGTERM when the job dies
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    warnings.filters[:] = filters
    torch.set_num_threads(threads)


@contextmanager
def stage_executor(jobs: int) -> Iterator[Executor]:
    """This process for one job; else `jobs` processes sharing this process's torch threads."""
    if jobs == 1:
        yield InlineExecutor()
        return
    import torch

    executor = PoolExecutor(jobs, max(1, torch.get_num_threads() // jobs))
    try:
        yield executor
    except BaseException:  # the job is stopping: its stages stop with it
        executor.pool.terminate()
        executor.pool.join()
        raise
    executor.pool.close()  # every stage has ended: the processes exit on their own
    executor.pool.join()


def timed(work: Callable[[], Any]) -> tuple[float, float]:
    """Run `work`; its wall and CPU seconds (this process's: in a worker, the stage's)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - start, time.process_time() - start_cpu


def run_stages(stages: Sequence[Stage], out: Path, console: Console,
               stage_seconds: Mapping[str, float] | None = None, one_line: bool = True,
               legacy: tuple[str, Mapping[str, str]] | None = None,
               jobs: int = 1) -> dict[str, float]:
    """Run `stages` (see the module docstring); returns the measured seconds of every finished
    stage, earlier runs' included. `one_line=False` prints a rule per stage instead of the
    progress line (the stages then show their own progress); `legacy`: (plan fingerprint,
    stage fingerprints under it), see recorded_fingerprints; `jobs`: stages run at once."""
    if jobs < 1:
        raise AdaptCommandError(f"--jobs must be at least 1, got {jobs}")
    check_needs(stages)
    stage_seconds = dict(stage_seconds or {})
    record_path = out / STAGES_FILE
    recorded = read_record(record_path)
    fingerprints = recorded_fingerprints(recorded, legacy)
    measured: dict[str, float] = dict(recorded.get("seconds", {}))
    cpu: dict[str, float] = dict(recorded.get("cpu_seconds", {}))
    ran: list[tuple[float | None, float]] = []
    log = one_line and not console.is_terminal
    # the job's wall time so far: stages overlap with jobs > 1 (a record from before holds
    # sequential runs: their sum)
    wall = float(recorded.get("wall_seconds", sum(measured.values())))
    began = time.perf_counter()

    def finished(stage: Stage) -> bool:
        return (not stage.always and fingerprints.get(stage.name) == stage.fingerprint
                and stage.name in measured
                and (stage.output is None or stage.output.exists()))

    def save() -> None:
        write_json_atomic(record_path, {
            "fingerprints": fingerprints, "seconds": measured, "cpu_seconds": cpu,
            "wall_seconds": round(wall + time.perf_counter() - began, 1), "jobs": jobs,
            "load_average": os.getloadavg()})

    todo = [stage for stage in stages if not finished(stage)]
    done = {stage.name for stage in stages} - {stage.name for stage in todo}
    chain = chain_seconds(stages, stage_seconds, measured)
    running: dict[Future[tuple[float, float]], tuple[Stage, float | None]] = {}
    error: BaseException | None = None

    def start(stage: Stage, executor: Executor) -> None:
        if fingerprints.get(stage.name, stage.fingerprint) != stage.fingerprint:
            clear(stage)
            measured.pop(stage.name, None)
            cpu.pop(stage.name, None)
        # recorded as it starts: killed half-way, it resumes under the same settings and
        # starts clean under others
        fingerprints[stage.name] = stage.fingerprint
        save()
        left = eta_seconds([*todo, stage, *(s for s, _ in running.values())], stage_seconds,
                           measured, ran, jobs, chain)
        progress.update(task, description=" + ".join(
            [stage.name, *(s.name for s, _ in running.values())]), eta=format_seconds(left))
        if log:
            console.print(f"[{stages.index(stage) + 1}/{len(stages)}] {stage.name} started, "
                          f"ETA {format_seconds(left)}", highlight=False)
        elif not one_line:
            console.rule(f"[bold]{stage.name}")
        expected = estimate(stage, stage_seconds, measured)
        running[executor.submit(timed, stage.work)] = (stage, expected)

    def end(future: Future[tuple[float, float]]) -> BaseException | None:
        stage, expected = running.pop(future)
        try:
            seconds, cpu_seconds = future.result()
        except Exception as exc:
            console.print(f"[red]{stage.name} failed[/]", highlight=False)
            return exc
        cpu[stage.name] = round(cpu_seconds, 1)
        ran.append((expected, seconds))
        measured[stage.name] = round(seconds, 1)
        done.add(stage.name)
        save()
        if log or not one_line:
            console.print(f"[green]{stage.name} done[/] in {seconds:.0f} s", highlight=False)
        progress.update(task, advance=1, description=" + ".join(
            s.name for s, _ in running.values()))
        return None

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("stages"), TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                  console=console, disable=not one_line or log) as progress, \
            stage_executor(jobs) as executor:
        task = progress.add_task("", total=len(stages), completed=len(done), eta="?")
        while running or (todo and error is None):
            ready = [stage for stage in todo if done.issuperset(stage.needs)]
            if jobs > 1:
                ready.sort(key=lambda stage: -chain[stage.name])
            for stage in ready[:jobs - len(running)] if error is None else []:
                todo.remove(stage)
                start(stage, executor)
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                failure = end(future)
                error = error or failure
        if error is not None:
            raise error
        progress.update(task, description="done", eta="0m00s")
    return measured
