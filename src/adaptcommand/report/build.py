"""The compare/report stage from run directories to files: read, compare, draw, write.

Everything is computed before the first file is written, so bad input leaves --out untouched;
each file is then written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adaptcommand.fileio import atomic_path, write_json_atomic, write_text_atomic
from adaptcommand.report.compare import CompareSettings, Comparison, compare_runs, comparison_json
from adaptcommand.report.examples import FixedTurn, fixed_turns
from adaptcommand.report.html import render_html
from adaptcommand.report.markdown import summary_markdown
from adaptcommand.report.plots import render_figures
from adaptcommand.report.runs import load_predictions, load_runs

COMPARE_JSON = "compare.json"
SUMMARY_MD = "summary.md"
REPORT_HTML = "report.html"
N_EXAMPLES = 5
DEFAULT_TITLE = "AdaptCommand: adapted arms against the baseline"


@dataclass(frozen=True)
class ReportFiles:
    """Where the report went and what it found, for the console."""

    out: Path
    html: Path
    comparison: Comparison


def best_arm_examples(comparison: Comparison) -> list[FixedTurn]:
    """Turns the best arm fixed; none when either run lacks its predictions.jsonl."""
    best = comparison.best
    if best is None:
        return []
    baseline = load_predictions(comparison.baseline.path)
    adapted = load_predictions(best.run.path)
    if baseline is None or adapted is None:
        return []
    return fixed_turns(baseline, adapted, N_EXAMPLES)


def build_report(
    run_dirs: list[Path],
    out: Path,
    *,
    baseline: Path | None = None,
    settings: CompareSettings | None = None,
    title: str = DEFAULT_TITLE,
) -> ReportFiles:
    """Compare runs and write compare.json, summary.md, report.html and the PNG figures."""
    base, arms = load_runs(run_dirs, baseline)
    comparison = compare_runs(base, arms, settings or CompareSettings())
    figures = render_figures(comparison)
    html = render_html(comparison, title, figures, best_arm_examples(comparison))
    out = Path(out)
    for name, (_, png) in figures.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(png)
    write_json_atomic(out / COMPARE_JSON, comparison_json(comparison, title))
    write_text_atomic(out / SUMMARY_MD, summary_markdown(comparison, title))
    write_text_atomic(out / REPORT_HTML, html)
    return ReportFiles(out, out / REPORT_HTML, comparison)
