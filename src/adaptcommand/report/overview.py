"""The all-arms overview: every run of every group side by side, with its headline metrics, its
lift over its own group's baseline, its preference-probe scores and what its training cost.

Arms evaluated on different turns (e.g. cold-start users) are never compared with each other,
only placed next to each other; each row's delta is against the baseline of its group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adaptcommand.evaluation.stats import DeltaSummary
from adaptcommand.report.compare import ArmComparison, CompareSettings, Comparison, absolute
from adaptcommand.report.run_results import Run

OVERVIEW_METRICS = ("embedding_similarity", "param_f1")
PROBE_HEADLINE_WORDS = ("f1", "param", "value", "accuracy")  # probe metrics shown in the overview


@dataclass(frozen=True)
class Cost:
    """What an arm cost to train; a run that trained nothing costs 0."""

    train_seconds: float | None
    adapter_bytes: int
    n_adapters: int


@dataclass(frozen=True)
class OverviewRow:
    """One run in the overview; `arm` is None for a group's baseline."""

    group: str
    run: Run
    arm: ArmComparison | None
    cost: Cost | None  # None: the run uses adapters but has no training_cost.json

    def primary(self, settings: CompareSettings) -> DeltaSummary | None:
        """The mean delta on the primary metric against the group's baseline (None: baseline
        or no persona paired)."""
        return self.arm.metrics[settings.primary_metric].summary if self.arm else None


def run_cost(run: Run) -> Cost | None:
    """training_cost.json when present, else 0 for a run without adapters (the baseline, a
    memory-only arm): it trained nothing."""
    if run.training_cost is not None:
        return Cost(**run.training_cost.model_dump())
    return Cost(0.0, 0, 0) if run.results.adapters is None else None


def overview_metrics(settings: CompareSettings) -> list[str]:
    """The absolute metrics of the overview: the headline two and the primary metric, where
    compared (all_metrics are the ones checked to exist)."""
    wanted = dict.fromkeys([*OVERVIEW_METRICS, settings.primary_metric])
    return [m for m in wanted if m in settings.all_metrics]


def probe_headline(runs: list[Run]) -> list[str]:
    """Probe metrics whose names mark them as headline scores (f1/param/value/accuracy), in
    order of appearance; all of them when none does."""
    names = list(dict.fromkeys(name for run in runs if run.probe for name in run.probe.metrics))
    headline = [n for n in names if any(word in n for word in PROBE_HEADLINE_WORDS)]
    return headline or names


def overview_rows(comparisons: list[Comparison]) -> list[OverviewRow]:
    """Each group's baseline, then its arms, group after group."""
    rows = []
    for comparison in comparisons:
        base = comparison.baseline
        rows.append(OverviewRow(comparison.group, base, None, run_cost(base)))
        rows += [OverviewRow(comparison.group, arm.run, arm, run_cost(arm.run))
                 for arm in comparison.arms]
    return rows


def _interval(summary: DeltaSummary | None) -> dict[str, Any] | None:
    return asdict(summary.mean) if summary else None


def overview_json(rows: list[OverviewRow], settings: CompareSettings) -> list[dict[str, Any]]:
    """compare.json's `overview`: the numbers of the all-arms table, one object per row."""
    metrics = overview_metrics(settings)
    probes = probe_headline([row.run for row in rows])
    result = []
    for row in rows:
        summary = row.primary(settings)
        result.append({
            "group": row.group,
            "label": row.run.label,
            "arm": row.run.results.arm,
            "baseline": row.arm is None,
            "absolute": {m: absolute(row.run, m) for m in metrics},
            "primary_metric": settings.primary_metric,
            "delta": _interval(summary),
            "share_helped": summary.share_helped if summary else None,
            "verdict": asdict(row.arm.verdict) if row.arm else None,
            "probe": ({n: row.run.probe.metrics.get(n) for n in probes} if row.run.probe
                      else None),
            "cost": asdict(row.cost) if row.cost else None,
        })
    return result
