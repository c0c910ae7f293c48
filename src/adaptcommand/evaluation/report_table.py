"""The headline table printed at the end of an evaluation."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

HEADLINE = (
    ("embedding_similarity", "embedding sim."),
    ("rougeL", "ROUGE-L"),
    ("device_precision", "device precision"),
    ("device_f1", "device F1"),
    ("param_f1", "param F1"),
    ("numeric_precision", "numerical precision"),
)


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def metrics_table(title: str, metrics: dict[str, float | None],
                  intervals: dict[str, dict[str, Any]], ci_label: str) -> Table:
    """One row per metric: its value and, where computed, its interval."""
    table = Table(title=title)
    for column in ("metric", "value", ci_label):
        table.add_column(column)
    for name, value in metrics.items():
        interval = intervals.get(name)
        ci = f"[{fmt(interval['low'])}, {fmt(interval['high'])}]" if interval else ""
        table.add_row(name, fmt(value), escape(ci))
    return table


def print_headline(console: Console, results: dict[str, Any]) -> None:
    """Headline metrics with their 95% session-bootstrap intervals."""
    counts = results["counts"]
    table = Table(title=f"{results.get('arm', 'run')}: {counts['turns']} turns, "
                  f"{counts['sessions']} sessions, {counts['personas']} personas")
    for column in ("metric", "value", "95% CI"):
        table.add_column(column)
    for key, label in HEADLINE:
        interval = results["confidence_intervals"][key]
        table.add_row(label, fmt(interval["estimate"]),
                      escape(f"[{fmt(interval['low'])}, {fmt(interval['high'])}]"))
    console.print(table)
