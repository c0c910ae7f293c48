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

from adaptcommand.report.compare import ArmComparison, Comparison, success_definition
from adaptcommand.report.examples import FixedTurn
from adaptcommand.report.markdown import fmt, fmt_delta, summary_table, verdict_text
from adaptcommand.report.runs import Run

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


def data_section(comparison: Comparison) -> str:
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
    return section("Data and configuration", summary, table(header, rows))


def summary_section(comparison: Comparison) -> str:
    header, rows = summary_table(comparison)
    note = ("<p>Cells: value [evaluation CI]; Δ = mean per-persona delta against the baseline "
            "[paired bootstrap CI over personas].</p>")
    return section("Summary", note, table(header, rows))


def figures_section(figures: dict[str, tuple[str, bytes]]) -> str:
    parts = []
    for name, (caption, png) in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
                     f"<figcaption>{escape(caption)} ({escape(name)})</figcaption></figure>")
    return section("Figures", *parts)


def _statistics_rows(arm: ArmComparison) -> list[list[str]]:
    rows = []
    for metric, delta in arm.metrics.items():
        s = delta.summary
        if s is None:
            rows.append([metric, "0", "n/a", "", "", "", "", ""])
            continue
        t = s.sign_test
        rows.append([metric, str(s.n_personas), fmt_delta(s.mean), str(t.helped), str(t.hurt),
                     str(t.tied), f"{t.p_value:.3g}", f"{s.share_helped:.0%}"])
    return rows


def verdict_section(comparison: Comparison) -> str:
    parts = [f'<p class="definition"><b>Bar of success.</b> '
             f"{escape(success_definition(comparison.settings))}</p>"]
    header = ["metric", "paired personas", "mean delta [CI]", "helped", "hurt", "tied",
              "sign test p", "share helped"]
    for arm in comparison.arms:
        css = "pass" if arm.verdict.passes else "fail"
        parts.append(f'<h3>{escape(arm.run.label)}: <span class="{css}">'
                     f"{escape(verdict_text(arm))}</span></h3>")
        parts.append(table(header, _statistics_rows(arm)))
    return section("Verdict per arm", *parts)


def personas_section(comparison: Comparison) -> str:
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
    return section("Who benefits most and least", *parts)


def _utterance(text: str, actions: dict[str, Any]) -> str:
    """A reply and the actions extracted from it, for an example row."""
    return (f'{escape(text)}<br><span class="mono">'
            f"{escape(json.dumps(actions, sort_keys=True))}</span>")


def examples_section(best: ArmComparison | None, examples: list[FixedTurn]) -> str:
    if best is None or not examples:
        return section("Example turns", "<p>No turn where the best arm got the reference's "
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
    return section("Example turns", intro, table(header, rows, raw=True))


def extras_sections(runs: list[Run]) -> list[str]:
    """Training cost and preference-probe tables, for the runs that carry those files."""
    parts = []
    costed = [run for run in runs if run.training_cost]
    if costed:
        rows = [[run.label, fmt(run.training_cost.train_seconds),
                 f"{run.training_cost.adapter_bytes / 2**20:.2f}",
                 str(run.training_cost.n_adapters)] for run in costed]
        parts.append(section("Training cost", table(
            ["arm", "train seconds", "adapter MiB", "adapters"], rows)))
    probed = [run for run in runs if run.probe]
    if probed:
        names = list(dict.fromkeys(name for run in probed for name in run.probe.metrics))
        rows = [[run.label, *(fmt(run.probe.metrics.get(n)) for n in names)] for run in probed]
        parts.append(section("Preference probe", table(["arm", *names], rows)))
    return parts


def render_html(
    comparison: Comparison,
    title: str,
    figures: dict[str, tuple[str, bytes]],
    examples: list[FixedTurn],
) -> str:
    """The whole report page."""
    runs = [comparison.baseline] + [arm.run for arm in comparison.arms]
    body = [
        data_section(comparison),
        summary_section(comparison),
        figures_section(figures),
        verdict_section(comparison),
        personas_section(comparison),
        examples_section(comparison.best, examples),
        *extras_sections(runs),
    ]
    return PAGE.substitute(title=escape(title), body="\n".join(body))
