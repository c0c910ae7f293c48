"""The report's personal-value section: per arm, how many of the values only knowledge of the
user can give (`evaluation.personal_values`) it recovers, overall and on implicit requests,
with paired per-persona deltas against the group's baseline.

Runs evaluated before the metric existed have no `personal_*` metrics: a group whose baseline
lacks them gets no section, and an arm that lacks them gets "n/a" cells.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from adaptcommand.report.compare import Comparison, MetricDelta, absolute, compare_metric
from adaptcommand.report.markdown import fmt_delta, fmt_interval, markdown_table
from adaptcommand.report.run_results import Run

PERSONAL_REPORTED = ("personal_recall", "personal_recall_implicit", "personal_recall_explicit",
                     "personal_precision", "personal_turn_share", "implicit_turn_share")
EXPLANATION = (
    "Personal values: the (device, parameter, value) triples of the reference reply that no "
    "message of the prompt's context states (only knowledge of the user gives them). Recall = "
    "share of them the reply states; precision = share of the reply's values beyond the "
    "context that are personal values; implicit = the user's last message appeals to habit "
    "(\"my usual\", \"you know how I like it\"). Cells: value [evaluation CI]; Δ mean "
    "per-persona delta vs the baseline [paired bootstrap CI] (personas helped / paired)."
)


def personal_metrics(comparison: Comparison) -> list[str]:
    """The reported personal-value metrics the group's baseline has (none for older runs)."""
    return [m for m in PERSONAL_REPORTED if m in comparison.baseline.results.metrics]


def personal_deltas(comparison: Comparison) -> list[tuple[Run, dict[str, MetricDelta | None]]]:
    """Each run of the group (baseline first) with its paired delta per personal-value metric
    (None for the baseline); empty when the group has none of the metrics."""
    metrics = personal_metrics(comparison)
    runs = [comparison.baseline, *(arm.run for arm in comparison.arms)] if metrics else []
    return [(run, {m: None if run is comparison.baseline else
                   compare_metric(comparison.baseline, run, m, comparison.settings)
                   for m in metrics}) for run in runs]


def _cell(run: Run, metric: str, delta: MetricDelta | None) -> str:
    value = fmt_interval(**absolute(run, metric))
    summary = delta.summary if delta else None
    if summary is None:
        return value
    return f"{value}; {fmt_delta(summary.mean)} ({summary.sign_test.helped}/{summary.n_personas})"


def personal_table(comparison: Comparison) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows), one row per run, or None when the group has no personal-value metrics."""
    deltas = personal_deltas(comparison)
    if not deltas:
        return None
    metrics = personal_metrics(comparison)
    rows = [[run.label, *(_cell(run, m, by_metric[m]) for m in metrics)]
            for run, by_metric in deltas]
    return ["arm", *metrics], rows


def personal_markdown(comparisons: list[Comparison]) -> str:
    """summary.md's "Personal values" section ("" when no group has the metrics)."""
    lines: list[str] = []
    for comparison in comparisons:
        found = personal_table(comparison)
        if found is not None:
            where = "" if len(comparisons) == 1 else f": {comparison.group}"
            lines += [f"## Personal values{where}", "", EXPLANATION, "",
                      *markdown_table(*found), ""]
    return "\n".join(lines)


def personal_json(comparison: Comparison) -> dict[str, Any]:
    """compare.json's `personal_values` of one group: per run label, each metric's value [CI]
    and (arms only) the paired delta summary and per-persona deltas."""
    return {
        run.label: {metric: {"absolute": absolute(run, metric),
                             "delta": asdict(d.summary) if d and d.summary else None,
                             "per_persona": d.deltas if d else None}
                    for metric, d in by_metric.items()}
        for run, by_metric in personal_deltas(comparison)
    }
