"""The compare/report stage from run directories to files: read, compare, draw, write.

Everything is computed before the first file is written, so bad input leaves --out untouched;
each file is then written atomically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptcommand.fileio import atomic_path, write_json_atomic, write_text_atomic
from adaptcommand.report.compare import (
    CompareSettings,
    Comparison,
    compare_runs,
    comparison_json,
    success_definition,
)
from adaptcommand.report.examples import FixedTurn, fixed_turns
from adaptcommand.report.html import Figures, render_html
from adaptcommand.report.markdown import summary_markdown
from adaptcommand.report.overview import OverviewRow, overview_json, overview_rows
from adaptcommand.report.personal import personal_json, personal_markdown
from adaptcommand.report.plots import FIGURES, cost_benefit, render_figures
from adaptcommand.report.routines import (
    curve_figures,
    load_user_model,
    user_model_html,
    user_model_markdown,
)
from adaptcommand.report.run_results import load_groups, load_predictions

COMPARE_JSON = "compare.json"
SUMMARY_MD = "summary.md"
REPORT_HTML = "report.html"
COST_BENEFIT_PNG = "cost_benefit.png"
N_EXAMPLES = 5
DEFAULT_TITLE = "AdaptCommand: adapted arms against the baseline"


@dataclass(frozen=True)
class ReportFiles:
    """Where the report went and what it found, for the console."""

    out: Path
    html: Path
    comparisons: list[Comparison]


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


def group_figures(comparisons: list[Comparison]) -> list[Figures]:
    """Each group's figures; file names get the group's name in front when there are several."""
    if len(comparisons) == 1:
        return [render_figures(comparisons[0])]
    return [{f"{slug(c.group)}-{name}": figure for name, figure in render_figures(c).items()}
            for c in comparisons]


def slug(name: str) -> str:
    """A group name as a file-name prefix, e.g. `test [0123abcd, 10 turns]` ->
    `test-0123abcd-10-turns`."""
    return "-".join(re.findall(r"[A-Za-z0-9_]+", name)) or "group"


def remove_stale_figures(out: Path, current: set[str]) -> None:
    """Drop figures an earlier report into `out` wrote under names this one does not use (e.g.
    unprefixed ones once a second group appears), so the directory shows one report."""
    for path in out.glob("*.png"):
        if path.name not in current and path.name.endswith((COST_BENEFIT_PNG, *FIGURES)):
            path.unlink()


def compare_json(comparisons: list[Comparison], rows: list[OverviewRow], title: str
                 ) -> dict[str, Any]:
    """compare.json: every number of the report, with the settings that produced them."""
    settings = comparisons[0].settings
    return {
        "title": title,
        "settings": settings.model_dump(),
        "success_definition": success_definition(settings),
        "overview": overview_json(rows, settings),
        "groups": [{**comparison_json(c), "personal_values": personal_json(c)}
                   for c in comparisons],
    }


def build_report(
    run_dirs: list[Path],
    out: Path,
    *,
    baseline: Path | Sequence[Path] | None = None,
    settings: CompareSettings | None = None,
    title: str = DEFAULT_TITLE,
    user_model: Sequence[Path] = (),
) -> ReportFiles:
    """Group the runs by the turns they were evaluated on, compare each group's arms with its
    baseline and write compare.json, summary.md, report.html and the PNG figures; `user_model`
    directories (`routines curve`, `probe --profiles`) add the user-model sections."""
    baselines = [baseline] if isinstance(baseline, (str, Path)) else list(baseline or [])
    settings = settings or CompareSettings()
    comparisons = [compare_runs(group, settings) for group in load_groups(run_dirs, baselines)]
    rows = overview_rows(comparisons)
    overview = {COST_BENEFIT_PNG: ("Cost vs benefit per arm", cost_benefit(rows, settings))}
    figures = group_figures(comparisons)
    examples = [best_arm_examples(c) for c in comparisons]
    users = load_user_model(user_model)
    user_figures = curve_figures(users)
    html = render_html(comparisons, rows, title, overview, figures, examples,
                       user_model_html(users, rows, user_figures))
    out = Path(out)
    pngs = dict([*overview.items(), *(f for g in figures for f in g.items()),
                 *user_figures.items()])
    for name, (_, png) in pngs.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(png)
    remove_stale_figures(out, set(pngs))
    write_json_atomic(out / COMPARE_JSON, compare_json(comparisons, rows, title))
    markdown = (summary_markdown(comparisons, rows, title) + personal_markdown(comparisons)
                + user_model_markdown(users, rows))
    write_text_atomic(out / SUMMARY_MD, markdown)
    write_text_atomic(out / REPORT_HTML, html)
    return ReportFiles(out, out / REPORT_HTML, comparisons)
