"""Per-persona deltas of each arm against its group's baseline, their statistics and verdict.

A persona is paired when both runs define the metric for it (an action precision is undefined
for a persona with no predicted action); a persona is its own bootstrap cluster. The statistics
themselves live in `evaluation.stats`. Below `stats.MIN_USERS` paired personas there is no
interval, no p-value and no verdict (`too_few_users`), only the estimate and the counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field

from adaptcommand.config import StrictModel
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.stats import (
    MIN_USERS,
    DeltaSummary,
    summarize_deltas,
    too_few_users,
)
from adaptcommand.report.run_results import Run, RunGroup

DEFAULT_METRICS = (
    "embedding_similarity", "rougeL", "device_precision", "device_f1", "param_f1",
    "numeric_precision", "numeric_f1", "categorical_f1",
)
DEFAULT_GUARDS = ("embedding_similarity", "device_precision")


class CompareSettings(StrictModel):
    """What is compared and what counts as success."""

    metrics: list[str] = Field(list(DEFAULT_METRICS), min_length=1,
                               description="Metrics reported (flat names of results.json).")
    primary_metric: str = Field("param_f1", description="Metric of the success bar.")
    guard_metrics: list[str] = Field(list(DEFAULT_GUARDS), description="Safety/quality metrics "
                                     "that must not regress.")
    min_share_helped: float = Field(0.6, gt=0, le=1, description="Share of personas the primary "
                                    "metric must improve for an arm to pass.")
    top_k: int = Field(5, ge=1, description="Most helped / most hurt personas listed.")
    n_resamples: int = Field(1000, ge=10, description="Bootstrap resamples of personas.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the intervals.")
    seed: int = Field(0, description="Seed of the bootstrap.")

    @property
    def all_metrics(self) -> list[str]:
        """Reported metrics, then the primary and guard metrics the verdict needs, once each."""
        return list(dict.fromkeys([*self.metrics, self.primary_metric, *self.guard_metrics]))


@dataclass(frozen=True)
class MetricDelta:
    """One arm's per-persona deltas on one metric; `summary` is None when no persona pairs."""

    metric: str
    deltas: dict[str, float]
    summary: DeltaSummary | None


@dataclass(frozen=True)
class Verdict:
    """Whether an arm clears the bar, with the numbers that decided it; `passes` is None when
    too few personas are paired on the primary metric to decide (`too_few_users`)."""

    passes: bool | None
    share_helped: float | None
    regressions: list[str]
    unmeasured: list[str]
    n_users: int = 0
    too_few_users: bool = False


@dataclass(frozen=True)
class ArmComparison:
    run: Run
    metrics: dict[str, MetricDelta]
    verdict: Verdict


@dataclass(frozen=True)
class Comparison:
    """Everything the report shows about one group of runs, computed once."""

    group: str
    baseline: Run
    arms: list[ArmComparison]
    settings: CompareSettings

    @property
    def best(self) -> ArmComparison | None:
        """The arm with the largest mean delta on the primary metric (None if none measured)."""
        primary = self.settings.primary_metric
        scored = [(summary.mean.estimate, arm) for arm in self.arms
                  if (summary := arm.metrics[primary].summary) is not None]
        return max(scored, key=lambda pair: pair[0])[1] if scored else None


def success_definition(settings: CompareSettings) -> str:
    """The bar of success in words, printed next to every verdict."""
    guards = ", ".join(settings.guard_metrics) or "none"
    return (
        f"An arm passes when at least {settings.min_share_helped:.0%} of the paired personas "
        f"are helped (per-persona delta > 0) on {settings.primary_metric}, and no guard metric "
        f"({guards}) regresses: a guard regresses when the upper end of its "
        f"{settings.confidence:.0%} paired-bootstrap interval of the mean per-persona delta is "
        f"below 0. A guard no persona can be paired on is reported as unmeasured and does not "
        f"fail the arm. With fewer than {MIN_USERS} paired personas no interval, p-value or "
        f"verdict is given (\"too few users to decide: N\"); a guard with fewer is unmeasured."
    )


def check_metrics(settings: CompareSettings, baseline: Run) -> None:
    """Every requested metric must be one the runs report."""
    known = baseline.results.metrics
    unknown = [m for m in settings.all_metrics if m not in known]
    if unknown:
        raise AdaptCommandError(
            f"unknown metric(s) {', '.join(unknown)}; results.json has: {', '.join(known)}"
        )


def persona_deltas(baseline: Run, arm: Run, metric: str) -> dict[str, float]:
    """Arm minus baseline for each persona both runs define `metric` for, in baseline order."""
    base, other = baseline.results.per_persona, arm.results.per_persona
    deltas = {}
    for persona, values in base.items():
        before = values.get(metric)
        after = other.get(persona, {}).get(metric)
        if before is not None and after is not None:
            deltas[persona] = after - before
    return deltas


def compare_metric(baseline: Run, arm: Run, metric: str, settings: CompareSettings) -> MetricDelta:
    deltas = persona_deltas(baseline, arm, metric)
    summary = summarize_deltas(
        deltas, settings.top_k, settings.n_resamples, settings.confidence, settings.seed
    ) if deltas else None
    return MetricDelta(metric, deltas, summary)


def verdict(metrics: dict[str, MetricDelta], settings: CompareSettings) -> Verdict:
    """Apply the bar of `success_definition` to one arm's deltas."""
    primary = metrics[settings.primary_metric].summary
    share = primary.share_helped if primary else None
    n_users = primary.n_personas if primary else 0
    regressions, unmeasured = [], []
    for guard in settings.guard_metrics:
        summary = metrics[guard].summary
        if summary is None or summary.too_few_users:
            unmeasured.append(guard)
        elif summary.mean.high is not None and summary.mean.high < 0:
            regressions.append(guard)
    few = primary is not None and primary.too_few_users
    passes = (None if few else
              share is not None and share >= settings.min_share_helped and not regressions)
    return Verdict(passes, share, regressions, unmeasured, n_users, few)


def compare_runs(group: RunGroup, settings: CompareSettings) -> Comparison:
    """Deltas, statistics and verdict of every arm of a group against the group's baseline."""
    check_metrics(settings, group.baseline)
    compared = []
    for arm in group.arms:
        metrics = {m: compare_metric(group.baseline, arm, m, settings)
                   for m in settings.all_metrics}
        compared.append(ArmComparison(arm, metrics, verdict(metrics, settings)))
    return Comparison(group.name, group.baseline, compared, settings)


def absolute(run: Run, metric: str) -> dict[str, Any]:
    """A run's value of `metric` with its evaluation-time interval when it has one and enough
    users: `{estimate, low, high, n_users, too_few_users}`. Results written before intervals
    carried `n_users` count the run's personas, so their intervals are withheld just as well."""
    interval = run.results.confidence_intervals.get(metric)
    n_users = (interval.n_users if interval and interval.n_users is not None
               else run.results.counts.personas)
    few = too_few_users(n_users)
    value = {"estimate": run.results.metrics.get(metric), "low": None, "high": None}
    if interval is not None:
        value = interval.model_dump(include={"estimate", "low", "high"})
    if few:
        value |= {"low": None, "high": None}
    return {**value, "n_users": n_users, "too_few_users": few}


def _run_json(run: Run, metrics: list[str]) -> dict[str, Any]:
    return {
        "label": run.label,
        "arm": run.results.arm,
        "path": str(run.path),
        "absolute": {m: absolute(run, m) for m in metrics},
        "training_cost": run.training_cost.model_dump() if run.training_cost else None,
        "probe": run.probe.metrics if run.probe else None,
    }


def _metric_json(delta: MetricDelta) -> dict[str, Any]:
    summary = asdict(delta.summary) if delta.summary else None
    return {"summary": summary, "per_persona": delta.deltas}


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """One group's part of compare.json: its data, baseline, arms with deltas and verdicts."""
    metrics = comparison.settings.all_metrics
    base = comparison.baseline.results
    best = comparison.best
    return {
        "name": comparison.group,
        "split": base.config.get("evaluation", {}).get("split"),
        "data": {"data": base.data, "data_fingerprint": base.data_fingerprint,
                 "counts": base.counts.model_dump()},
        "baseline": _run_json(comparison.baseline, metrics),
        "arms": [
            {
                **_run_json(arm.run, metrics),
                "deltas": {m: _metric_json(arm.metrics[m]) for m in metrics},
                "verdict": asdict(arm.verdict),
            }
            for arm in comparison.arms
        ],
        "best_arm": best.run.label if best else None,
    }
