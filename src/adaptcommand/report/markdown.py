"""summary.md: one table, arm by headline metric, with intervals, deltas and the verdict.

The table's cells are built here once and rendered both as Markdown and in the HTML report.
"""

from __future__ import annotations

from adaptcommand.evaluation.stats import Interval
from adaptcommand.report.compare import ArmComparison, Comparison, absolute, success_definition
from adaptcommand.report.runs import Run


def fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def fmt_interval(estimate: float | None, low: float | None, high: float | None,
                 signed: bool = False) -> str:
    """`0.812 [0.801, 0.823]`, or the value alone when the interval is unknown."""
    if low is None or high is None:
        return fmt(estimate, signed)
    return f"{fmt(estimate, signed)} [{fmt(low, signed)}, {fmt(high, signed)}]"


def fmt_delta(interval: Interval) -> str:
    return "Δ " + fmt_interval(interval.estimate, interval.low, interval.high, signed=True)


def verdict_text(arm: ArmComparison) -> str:
    """PASS/FAIL with the reason a reader needs first."""
    v = arm.verdict
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
        helped = (f"{test.sign_test.helped}/{test.n_personas} (p={test.sign_test.p_value:.3g})"
                  if test else "n/a")
        rows.append([arm.run.label, *(_cell(arm.run, m, arm) for m in settings.metrics),
                     helped, verdict_text(arm)])
    return header, rows


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def summary_markdown(comparison: Comparison, title: str) -> str:
    """The whole summary.md."""
    header, rows = summary_table(comparison)
    counts = comparison.baseline.results.counts
    lines = [
        f"# {title}",
        "",
        f"{counts.turns} turns, {counts.sessions} sessions, {counts.personas} personas; "
        f"baseline: {comparison.baseline.label}. Cells: value [evaluation CI]; "
        f"Δ mean per-persona delta vs baseline [paired bootstrap "
        f"{comparison.settings.confidence:.0%} CI].",
        "",
        _row(header),
        "|" + "---|" * len(header),
        *(_row(row) for row in rows),
        "",
        f"**Bar of success.** {success_definition(comparison.settings)}",
        "",
    ]
    return "\n".join(lines)
