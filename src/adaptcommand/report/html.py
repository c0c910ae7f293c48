"""report.html: one self-contained page (inline CSS, images as base64 PNG, no external assets).

Sections are small functions returning HTML fragments; every value from the runs is escaped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from html import escape
from string import Template
from typing import Any

from adaptcommand.report.arms import ARMS_HEADER, arm_descriptions
from adaptcommand.report.compare import ArmComparison, Comparison, success_definition
from adaptcommand.report.examples import FixedTurn
from adaptcommand.report.markdown import (
    fmt,
    fmt_delta,
    fmt_p_value,
    group_suffix,
    interval_note,
    overview_table,
    summary_table,
    verdict_text,
)
from adaptcommand.report.overview import OverviewRow
from adaptcommand.report.personal import EXPLANATION, personal_table

Figures = dict[str, tuple[str, bytes]]  # file name -> (caption, PNG)

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { border-bottom: 2px solid #444; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: left;
         vertical-align: top; }
th { background: #f2f2f2; }
.pass { color: #1a7f37; font-weight: bold; }
.fail { color: #b42318; font-weight: bold; }
.undecided { color: #555; font-weight: bold; }
.definition { background: #f6f8fa; border-left: 4px solid #888; padding: 0.6rem 1rem; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-style: italic; color: #555; }
code, .mono { font-family: ui-monospace, monospace; font-size: 0.85rem; }
.scroll { overflow-x: auto; }
</style>
</head>
<body>
<h1>$title</h1>
$body
</body>
</html>
""")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless `raw` (fragments built here)."""
    cell = (lambda text: text) if raw else escape
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def section(heading: str, *parts: str) -> str:
    return f"<h2>{escape(heading)}</h2>\n" + "\n".join(parts)


def _decoding(config: dict[str, Any]) -> str:
    generation = config.get("generation", {})
    if generation.get("do_sample"):
        return f"sampling T={generation.get('temperature')} top_p={generation.get('top_p')}"
    return "greedy"


def data_section(comparison: Comparison, where: str) -> str:
    base = comparison.baseline.results
    runs = [comparison.baseline] + [arm.run for arm in comparison.arms]
    rows = []
    for run in runs:
        config = run.results.config
        rows.append([
            run.label, str(run.path), str(config.get("model", {}).get("name", "?")),
            run.results.adapters or "none", _decoding(config),
            str(config.get("evaluation", {}).get("split", "?")),
            str(config.get("prompt", {}).get("max_context_messages", "?")),
        ])
    summary = (f"<p>Data: <code>{escape(base.data)}</code> (sha256 "
               f"<code>{escape(base.data_fingerprint[:16])}</code>), {base.counts.turns} turns, "
               f"{base.counts.sessions} sessions, {base.counts.personas} personas. "
               f"Baseline: <b>{escape(comparison.baseline.label)}</b>.</p>")
    header = ["arm", "run directory", "model", "adapters", "decoding", "split", "context pairs"]
    return section(f"Data and configuration{where}", summary, table(header, rows))


def overview_section(rows: list[OverviewRow], comparisons: list[Comparison],
                     figures: Figures) -> str:
    """Every arm of every group side by side, with the cost-vs-benefit plot."""
    settings = comparisons[0].settings
    groups = ", ".join(f"<b>{escape(c.group)}</b> ({c.baseline.results.counts.turns} turns, "
                       f"compared with <i>{escape(c.baseline.label)}</i>)" for c in comparisons)
    note = (f"<p>Runs are grouped by the turns they were evaluated on: {groups}. Each arm is "
            "compared with the baseline of its own group only. Cells: value [evaluation CI]; "
            f"Δ = mean per-persona delta on {escape(settings.primary_metric)} against the "
            "group's baseline [paired bootstrap CI over personas]; absolute values [two-level "
            "bootstrap CI, personas then sessions]; cost 0 = nothing trained; probe = "
            f"preference probe (probe.json). {escape(interval_note())}</p>")
    described = arm_descriptions(rows)
    arms = [table(ARMS_HEADER, described)] if described else []
    return section("All arms", note, table(*overview_table(rows, settings)), *arms,
                   *figure_tags(figures))


def summary_section(comparison: Comparison, where: str) -> str:
    header, rows = summary_table(comparison)
    note = ("<p>Cells: value [evaluation CI]; Δ = mean per-persona delta against the baseline "
            f"[paired bootstrap CI over personas]. {escape(interval_note())}</p>")
    return section(f"Summary{where}", note, table(header, rows))


def personal_section(comparison: Comparison, where: str) -> str:
    """Personal values per arm (evaluation.personal_values); "" for runs without them."""
    found = personal_table(comparison)
    if found is None:
        return ""
    return section(f"Personal values{where}", f"<p>{escape(EXPLANATION)}</p>", table(*found))


def figure_tags(figures: Figures) -> list[str]:
    parts = []
    for name, (caption, png) in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
                     f"<figcaption>{escape(caption)} ({escape(name)})</figcaption></figure>")
    return parts


def figures_section(figures: Figures, where: str) -> str:
    return section(f"Figures{where}", *figure_tags(figures))


def _statistics_rows(arm: ArmComparison) -> list[list[str]]:
    rows = []
    for metric, delta in arm.metrics.items():
        s = delta.summary
        if s is None:
            rows.append([metric, "0", "n/a", "", "", "", "", ""])
            continue
        t = s.sign_test
        rows.append([metric, str(s.n_personas), fmt_delta(s.mean), str(t.helped), str(t.hurt),
                     str(t.tied), fmt_p_value(t.p_value, s.n_personas), f"{s.share_helped:.0%}"])
    return rows


def verdict_section(comparison: Comparison, where: str) -> str:
    parts = [f'<p class="definition"><b>Bar of success.</b> '
             f"{escape(success_definition(comparison.settings))}</p>"]
    header = ["metric", "paired personas", "mean delta [CI]", "helped", "hurt", "tied",
              "sign test p", "share helped"]
    for arm in comparison.arms:
        css = {True: "pass", False: "fail", None: "undecided"}[arm.verdict.passes]
        parts.append(f'<h3>{escape(arm.run.label)}: <span class="{css}">'
                     f"{escape(verdict_text(arm))}</span></h3>")
        parts.append(table(header, _statistics_rows(arm)))
    return section(f"Verdict per arm{where}", *parts)


def personas_section(comparison: Comparison, where: str) -> str:
    metric = comparison.settings.primary_metric
    parts = [f"<p>Per-persona delta on {escape(metric)} against the baseline.</p>"]
    for arm in comparison.arms:
        summary = arm.metrics[metric].summary
        if summary is None:
            continue
        rows = [[f"{p} ({fmt(d, signed=True)})" for p, d in pair]
                for pair in zip(summary.top, summary.bottom, strict=False)]
        parts.append(f"<h3>{escape(arm.run.label)}</h3>")
        parts.append(table(["benefits most", "benefits least"], rows))
    return section(f"Who benefits most and least{where}", *parts)


def _utterance(text: str, actions: dict[str, Any]) -> str:
    """A reply and the actions extracted from it, for an example row."""
    return (f'{escape(text)}<br><span class="mono">'
            f"{escape(json.dumps(actions, sort_keys=True))}</span>")


def examples_section(best: ArmComparison | None, examples: list[FixedTurn], where: str) -> str:
    if best is None or not examples:
        return section(f"Example turns{where}", "<p>No turn where the best arm got the reference's "
                       "actions right and the baseline did not (or no predictions.jsonl).</p>")
    rows = [[
        escape(f"{t.key[0]} / session {t.key[1]} / turn {t.key[2]}"),
        _utterance(t.baseline.reference, t.baseline.reference_actions),
        _utterance(t.baseline.prediction, t.baseline.prediction_actions),
        _utterance(t.arm.prediction, t.arm.prediction_actions),
    ] for t in examples]
    header = ["turn", "reference (actions)", "baseline", best.run.label]
    intro = (f"<p>Turns where <b>{escape(best.run.label)}</b> (the arm with the largest mean "
             "lift on the primary metric) extracts exactly the reference's actions and the "
             "baseline does not.</p>")
    return section(f"Example turns{where}", intro, table(header, rows, raw=True))


def extras_sections(rows: list[OverviewRow]) -> list[str]:
    """Training cost and preference-probe tables, for the runs that carry those files."""
    parts = []
    costed = [row for row in rows if row.run.training_cost]
    if costed:
        cost_rows = [[row.group, row.run.label, fmt(row.run.training_cost.train_seconds),
                      f"{row.run.training_cost.adapter_bytes / 2**20:.2f}",
                      str(row.run.training_cost.n_adapters)] for row in costed]
        parts.append(section("Training cost", table(
            ["group", "arm", "train seconds", "adapter MiB", "adapters"], cost_rows)))
    probed = [row for row in rows if row.run.probe]
    if probed:
        names = list(dict.fromkeys(name for row in probed for name in row.run.probe.metrics))
        probe_rows = [[row.group, row.run.label, *(fmt(row.run.probe.metrics.get(n))
                                                   for n in names)] for row in probed]
        parts.append(section("Preference probe", table(["group", "arm", *names], probe_rows)))
    return parts


def group_sections(comparison: Comparison, where: str, figures: Figures,
                   examples: list[FixedTurn]) -> list[str]:
    """Everything about one group of runs; `where` names the group when there are several."""
    return [
        data_section(comparison, where),
        summary_section(comparison, where),
        personal_section(comparison, where),
        figures_section(figures, where),
        verdict_section(comparison, where),
        personas_section(comparison, where),
        examples_section(comparison.best, examples, where),
    ]


def render_html(
    comparisons: list[Comparison],
    rows: list[OverviewRow],
    title: str,
    overview_figures: Figures,
    group_figures: list[Figures],
    examples: list[list[FixedTurn]],
    extra: Sequence[str] = (),
) -> str:
    """The whole report page: the all-arms overview, then each group's sections, then
    the `extra` sections (e.g. report.routines' user model)."""
    body = [overview_section(rows, comparisons, overview_figures)]
    for comparison, figures, turns in zip(comparisons, group_figures, examples, strict=True):
        body += group_sections(comparison, group_suffix(comparison, len(comparisons)), figures,
                               turns)
    body += extras_sections(rows)
    body += extra
    return PAGE.substitute(title=escape(title), body="\n".join(body))
