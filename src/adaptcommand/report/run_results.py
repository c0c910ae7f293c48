"""Reading evaluation run directories (written by `baseline` / `eval`) for a comparison.

Runs are grouped by what they were evaluated on (data fingerprint, split, turn counts), e.g. the
test split of the trained users and the cold_start split of held-out users; a delta is only
taken between runs of one group, against that group's baseline.

Only the fields a comparison needs are validated; anything else in results.json is kept out of
the way, so newer evaluation outputs stay readable. Every failure is a located `DataError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from adaptcommand.config import first_error
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.fileio import read_jsonl

RESULTS = "results.json"
PREDICTIONS = "predictions.jsonl"
TRAINING_COST = "training_cost.json"
PROBE = "probe.json"

BASELINE_ARM = "baseline"

Key = tuple[str, int, int]
GroupKey = tuple[str, str, int, int, int]  # data fingerprint, split, turns, sessions, personas
ModelT = TypeVar("ModelT", bound=BaseModel)


class _Lenient(BaseModel):
    """Validates the fields a report reads and ignores the rest of the file."""

    model_config = ConfigDict(extra="ignore")


class IntervalRecord(_Lenient):
    """One metric's interval in results.json; runs written before `n_users` existed lack it
    (the report then takes the run's persona count)."""

    estimate: float | None
    low: float | None
    high: float | None
    n_users: int | None = None
    too_few_users: bool = False


class RunCounts(_Lenient):
    turns: int
    sessions: int
    personas: int


class RunResults(_Lenient):
    """The part of results.json a comparison reads."""

    arm: str
    data: str
    data_fingerprint: str
    config: dict[str, Any]
    counts: RunCounts
    metrics: dict[str, float | None]
    confidence_intervals: dict[str, IntervalRecord]
    per_persona: dict[str, dict[str, float | None]]
    adapters: str | None = None


class TrainingCost(_Lenient):
    """training_cost.json, written by `eval` next to the results of trained adapters."""

    train_seconds: float | None = None
    adapter_bytes: int
    n_adapters: int


class Probe(_Lenient):
    """probe.json (preference probe); only its flat numeric `metrics` are reported."""

    metrics: dict[str, float | None]


class PredictionRecord(_Lenient):
    """One line of predictions.jsonl."""

    persona_id: str
    session_id: int
    turn_index: int
    prediction: str
    reference: str
    prediction_actions: dict[str, Any]
    reference_actions: dict[str, Any]

    @property
    def key(self) -> Key:
        return (self.persona_id, self.session_id, self.turn_index)


@dataclass(frozen=True)
class Run:
    """One evaluation run directory, read and validated."""

    path: Path
    label: str
    results: RunResults
    training_cost: TrainingCost | None
    probe: Probe | None


@dataclass(frozen=True)
class RunGroup:
    """Runs evaluated on the same turns (data, split, counts), with the one they are compared to."""

    name: str
    baseline: Run
    arms: list[Run]


def _validate(model: type[ModelT], raw: Any, path: Path, line: int | None = None) -> ModelT:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        field, message = first_error(exc)
        raise DataError(message, path=path, line=line, field=field) from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None


def _optional(model: type[ModelT], path: Path) -> ModelT | None:
    return _validate(model, _read_json(path), path) if path.is_file() else None


def load_run(directory: Path) -> Run:
    """A run directory's results plus its optional training cost and probe scores."""
    directory = Path(directory)
    results_path = directory / RESULTS
    if not results_path.is_file():
        raise DataError("not an evaluation run directory (no results.json)", path=directory)
    results = _validate(RunResults, _read_json(results_path), results_path)
    return Run(
        path=directory,
        label=results.arm,
        results=results,
        training_cost=_optional(TrainingCost, directory / TRAINING_COST),
        probe=_optional(Probe, directory / PROBE),
    )


def load_predictions(directory: Path) -> dict[Key, PredictionRecord] | None:
    """A run's predictions by turn key; None when the run directory has no predictions.jsonl."""
    path = Path(directory) / PREDICTIONS
    if not path.is_file():
        return None
    records = (_validate(PredictionRecord, raw, path, line) for line, raw in read_jsonl(path))
    return {record.key: record for record in records}


def unique_labels(arms: list[str], dirs: list[Path]) -> list[str]:
    """Arm names as labels; an arm name used by several runs gets its directory name appended."""
    pairs = zip(arms, dirs, strict=True)
    labels = [arm if arms.count(arm) == 1 else f"{arm} [{d.name}]" for arm, d in pairs]
    if len(set(labels)) != len(labels):
        raise AdaptCommandError("runs share both arm name and directory name; rename a directory")
    return labels


def group_key(run: Run) -> GroupKey:
    """What a run was evaluated on: runs with equal keys scored the same turns."""
    results = run.results
    split = str(results.config.get("evaluation", {}).get("split", "unknown"))
    counts = results.counts
    return (results.data_fingerprint, split, counts.turns, counts.sessions, counts.personas)


def group_names(keys: list[GroupKey]) -> list[str]:
    """The split name; where two groups share one, their data fingerprint and turn count too
    (and a number, should even those match)."""
    splits = [key[1] for key in keys]
    names = [split if splits.count(split) == 1 else f"{split} [{fingerprint[:8]}, {turns} turns]"
             for fingerprint, split, turns, *_ in keys]
    return [name if names.count(name) == 1 else f"{name} #{names[:i].count(name) + 1}"
            for i, name in enumerate(names)]


def describe_group(name: str, members: list[Run]) -> str:
    """`group 'test' (data 0123abcd, 10 turns, 5 sessions, 5 personas; runs: a (arm), ...)`."""
    fingerprint, _, turns, sessions, personas = group_key(members[0])
    runs = ", ".join(f"{run.path} ({run.results.arm})" for run in members)
    return (f"group '{name}' (data {fingerprint[:8]}, {turns} turns, {sessions} sessions, "
            f"{personas} personas; runs: {runs})")


def choose_baseline(name: str, members: list[Run], named: set[Path]) -> Run:
    """The group's run named by --baseline, else its one run whose arm is `baseline`."""
    chosen = ([run for run in members if run.path in named]
              or [run for run in members if run.results.arm == BASELINE_ARM])
    if not chosen:
        raise AdaptCommandError(
            f"no baseline for {describe_group(name, members)}: no run has arm "
            f"'{BASELINE_ARM}'; evaluate one on these turns or name it with --baseline"
        )
    if len(chosen) > 1:
        raise AdaptCommandError(
            f"several baselines for {describe_group(name, members)}: "
            f"{', '.join(str(run.path) for run in chosen)}; name one with --baseline"
        )
    return chosen[0]


def make_group(name: str, base: Run, members: list[Run]) -> RunGroup:
    """A group's baseline and arms, labelled uniquely and checked to share personas."""
    ordered = [base, *(run for run in members if run is not base)]
    if len(ordered) == 1:
        raise AdaptCommandError(f"nothing to compare in group '{name}': give at least one run "
                                f"besides its baseline {base.path}")
    labels = unique_labels([run.results.arm for run in ordered], [run.path for run in ordered])
    runs = [replace(run, label=label) for run, label in zip(ordered, labels, strict=True)]
    for run in runs[1:]:
        check_shared_personas(runs[0], run)
    return RunGroup(name, runs[0], runs[1:])


def load_groups(run_dirs: list[Path], baselines: Sequence[Path] = ()) -> list[RunGroup]:
    """The runs, grouped by the turns they were evaluated on, each group with its baseline.

    Groups come in order of their first run; `baselines` (--baseline, at most one per group)
    not among `run_dirs` are added in front.
    """
    resolved = [Path(p).resolve() for p in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise AdaptCommandError("the same run directory is given twice")
    named = list(dict.fromkeys(Path(p).resolve() for p in baselines))
    members: dict[GroupKey, list[Run]] = {}
    for directory in [*(b for b in named if b not in resolved), *resolved]:
        run = load_run(directory)
        members.setdefault(group_key(run), []).append(run)
    names = group_names(list(members))
    bases = [choose_baseline(name, runs, set(named))
             for name, runs in zip(names, members.values(), strict=True)]
    return [make_group(*group) for group in zip(names, bases, members.values(), strict=True)]


def check_shared_personas(base: Run, other: Run) -> None:
    """Refuse an arm that shares no persona with its baseline: no delta could be paired."""
    if not other.results.per_persona.keys() & base.results.per_persona.keys():
        raise DataError(f"no persona in common with the baseline {base.path}",
                        path=other.path / RESULTS, field="per_persona")
