"""summary.md: the all-arms overview, then per group of runs one table, arm by headline metric,
with intervals, deltas and the verdict.

The tables' cells are built here once and rendered both as Markdown and in the HTML report.
"""

from __future__ import annotations

from adaptcommand.evaluation.stats import MIN_USERS, Interval, too_few_users_text
from adaptcommand.report.arms import ARMS_HEADER, arm_descriptions
from adaptcommand.report.compare import (
    ArmComparison,
    CompareSettings,
    Comparison,
    absolute,
    success_definition,
)
from adaptcommand.report.overview import Cost, OverviewRow, overview_metrics, probe_headline
from adaptcommand.report.run_results import Run

MIB = 2**20


def fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def fmt_interval(estimate: float | None, low: float | None, high: float | None,
                 signed: bool = False, n_users: int | None = None,
                 too_few_users: bool = False) -> str:
    """`0.812 [0.801, 0.823] (12 users)`; below MIN_USERS users `0.812 (too few users to
    decide: 4)`; the value alone when the interval is unknown for another reason."""
    value = fmt(estimate, signed)
    if too_few_users and n_users is not None:
        return f"{value} ({too_few_users_text(n_users)})"
    if low is None or high is None:
        return value
    users = "" if n_users is None else f" ({n_users} users)"
    return f"{value} [{fmt(low, signed)}, {fmt(high, signed)}]{users}"


def fmt_delta(interval: Interval) -> str:
    return "Δ " + fmt_interval(interval.estimate, interval.low, interval.high, signed=True,
                               n_users=interval.n_users, too_few_users=interval.too_few_users)


def fmt_p_value(p_value: float | None, n_users: int) -> str:
    """The sign test's p-value, or why there is none."""
    return too_few_users_text(n_users) if p_value is None else f"{p_value:.3g}"


def interval_note() -> str:
    """The sentence every table of intervals carries."""
    return (f"Intervals, p-values and verdicts need at least {MIN_USERS} users; below that only "
            "estimates and counts are shown (\"too few users to decide: N\").")


def verdict_text(arm: ArmComparison) -> str:
    """PASS/FAIL with the reason a reader needs first; no verdict below MIN_USERS users."""
    v = arm.verdict
    if v.too_few_users:
        return too_few_users_text(v.n_users)
    if v.share_helped is None:
        return "FAIL (primary metric unmeasured)"
    notes = [f"{v.share_helped:.0%} helped"]
    notes += [f"{g} regressed" for g in v.regressions]
    notes += [f"{g} unmeasured" for g in v.unmeasured]
    return f"{'PASS' if v.passes else 'FAIL'} ({'; '.join(notes)})"


def _cell(run: Run, metric: str, arm: ArmComparison | None) -> str:
    value = fmt_interval(**absolute(run, metric))
    summary = arm.metrics[metric].summary if arm else None
    return f"{value}; {fmt_delta(summary.mean)}" if summary else value


def summary_table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """(header, rows): the baseline first, then each arm; a cell is `value [CI]; Δ mean [CI]`."""
    settings = comparison.settings
    header = ["arm", *settings.metrics, f"helped on {settings.primary_metric}", "verdict"]
    rows = [[comparison.baseline.label,
             *(_cell(comparison.baseline, m, None) for m in settings.metrics), "", "baseline"]]
    for arm in comparison.arms:
        test = arm.metrics[settings.primary_metric].summary
        helped = "n/a" if test is None else f"{test.sign_test.helped}/{test.n_personas}"
        if test is not None and test.sign_test.p_value is not None:
            helped += f" (p={test.sign_test.p_value:.3g})"
        rows.append([arm.run.label, *(_cell(arm.run, m, arm) for m in settings.metrics),
                     helped, verdict_text(arm)])
    return header, rows


def _cost_cells(cost: Cost | None) -> list[str]:
    if cost is None:
        return ["n/a"] * 3
    seconds = "n/a" if cost.train_seconds is None else f"{cost.train_seconds:.1f}"
    return [seconds, f"{cost.adapter_bytes / MIB:.2f}", str(cost.n_adapters)]


def _lift_cells(row: OverviewRow, settings: CompareSettings) -> list[str]:
    """Δ primary [CI], personas helped and verdict; a baseline has no lift."""
    if row.arm is None:
        return ["", "", "baseline"]
    summary = row.primary(settings)
    if summary is None:
        return ["n/a", "n/a", verdict_text(row.arm)]
    mean = summary.mean
    helped = f"{summary.sign_test.helped}/{summary.n_personas} ({summary.share_helped:.0%})"
    return [fmt_delta(mean).removeprefix("Δ "), helped, verdict_text(row.arm)]


def overview_table(rows: list[OverviewRow],
                   settings: CompareSettings) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the all-arms table: absolute metrics [CI], Δ of the primary metric
    against the row's own group baseline [CI], helped personas, verdict, probe, cost."""
    metrics = overview_metrics(settings)
    probes = probe_headline([row.run for row in rows])
    primary = settings.primary_metric
    header = ["group", "arm", *metrics, f"Δ {primary} [CI]", "personas helped", "verdict",
              *(f"probe {name}" for name in probes), "train seconds", "adapter MiB", "adapters"]
    table = []
    for row in rows:
        probe = row.run.probe.metrics if row.run.probe else {}
        table.append([row.group, row.run.label,
                      *(fmt_interval(**absolute(row.run, m)) for m in metrics),
                      *_lift_cells(row, settings), *(fmt(probe.get(name)) for name in probes),
                      *_cost_cells(row.cost)])
    return header, table


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(row) for row in rows)]


def group_markdown(comparison: Comparison, heading: str) -> list[str]:
    """One group's table of every reported metric."""
    counts = comparison.baseline.results.counts
    return [
        f"## {heading}",
        "",
        f"{counts.turns} turns, {counts.sessions} sessions, {counts.personas} personas; "
        f"baseline: {comparison.baseline.label}. Cells: value [evaluation CI]; "
        f"Δ mean per-persona delta vs baseline [paired bootstrap "
        f"{comparison.settings.confidence:.0%} CI over personas]. {interval_note()}",
        "",
        *markdown_table(*summary_table(comparison)),
        "",
    ]


def group_suffix(comparison: Comparison, n_groups: int) -> str:
    """Appended to a group's headings (`Summary: cold_start`) when the report has several."""
    return "" if n_groups == 1 else f": {comparison.group}"


def summary_markdown(comparisons: list[Comparison], rows: list[OverviewRow], title: str) -> str:
    """The whole summary.md."""
    settings = comparisons[0].settings
    lines = [
        f"# {title}",
        "",
        "## All arms",
        "",
        "Each arm against the baseline of its own group (runs evaluated on the same turns). "
        f"Δ: mean per-persona delta [paired bootstrap {settings.confidence:.0%} CI]. Absolute "
        "values: [two-level bootstrap CI, personas then sessions]. " + interval_note(),
        "",
        *markdown_table(*overview_table(rows, settings)),
        "",
    ]
    described = arm_descriptions(rows)
    if described:
        lines += ["## Arms", "", *markdown_table(ARMS_HEADER, described), ""]
    for comparison in comparisons:
        lines += group_markdown(comparison, "Metrics" + group_suffix(comparison, len(comparisons)))
    lines += [f"**Bar of success.** {success_definition(settings)}", ""]
    return "\n".join(lines)
