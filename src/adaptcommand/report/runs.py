"""Reading evaluation run directories (written by `baseline` / `eval`) for a comparison.

Only the fields a comparison needs are validated; anything else in results.json is kept out of
the way, so newer evaluation outputs stay readable. Every failure is a located `DataError`.
"""

from __future__ import annotations

import json
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

Key = tuple[str, int, int]
ModelT = TypeVar("ModelT", bound=BaseModel)


class _Lenient(BaseModel):
    """Validates the fields a report reads and ignores the rest of the file."""

    model_config = ConfigDict(extra="ignore")


class IntervalRecord(_Lenient):
    estimate: float | None
    low: float | None
    high: float | None


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


def order_runs(run_dirs: list[Path], baseline: Path | None) -> tuple[Path, list[Path]]:
    """(baseline, arms): the first run unless --baseline names one; each directory once."""
    resolved = [Path(p).resolve() for p in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise AdaptCommandError("the same run directory is given twice")
    if baseline is None:
        base, arms = resolved[0], resolved[1:]
    else:
        base = Path(baseline).resolve()
        arms = [p for p in resolved if p != base]
    if not arms:
        raise AdaptCommandError("nothing to compare: give at least one run besides the baseline")
    return base, arms


def unique_labels(arms: list[str], dirs: list[Path]) -> list[str]:
    """Arm names as labels; an arm name used by several runs gets its directory name appended."""
    pairs = zip(arms, dirs, strict=True)
    labels = [arm if arms.count(arm) == 1 else f"{arm} [{d.name}]" for arm, d in pairs]
    if len(set(labels)) != len(labels):
        raise AdaptCommandError("runs share both arm name and directory name; rename a directory")
    return labels


def load_runs(run_dirs: list[Path], baseline: Path | None) -> tuple[Run, list[Run]]:
    """The baseline run and the arms, checked to be comparable turn for turn."""
    base_dir, arm_dirs = order_runs(run_dirs, baseline)
    loaded = [load_run(d) for d in [base_dir, *arm_dirs]]
    labels = unique_labels([run.results.arm for run in loaded], [run.path for run in loaded])
    runs = [replace(run, label=label) for run, label in zip(loaded, labels, strict=True)]
    for run in runs[1:]:
        check_comparable(runs[0], run)
    return runs[0], runs[1:]


def check_comparable(base: Run, other: Run) -> None:
    """Refuse runs evaluated on other data or other turns: their deltas would mean nothing."""
    path = other.path / RESULTS
    if other.results.data_fingerprint != base.results.data_fingerprint:
        raise DataError(
            f"evaluated on different data than the baseline {base.path} "
            f"({other.results.data_fingerprint[:12]} vs {base.results.data_fingerprint[:12]})",
            path=path, field="data_fingerprint",
        )
    if other.results.counts != base.results.counts:
        raise DataError(
            f"evaluated on different turns than the baseline {base.path} "
            f"({other.results.counts.model_dump()} vs {base.results.counts.model_dump()})",
            path=path, field="counts",
        )
    if not other.results.per_persona.keys() & base.results.per_persona.keys():
        raise DataError(f"no persona in common with the baseline {base.path}", path=path,
                        field="per_persona")
