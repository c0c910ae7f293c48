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
    ("personal_recall", "personal-value recall"),  # evaluation.personal_values; absent in
    ("personal_recall_implicit", "  on implicit requests"),  # runs scored before it existed
)


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_headline(console: Console, results: dict[str, Any]) -> None:
    """Headline metrics with their 95% session-bootstrap intervals."""
    counts = results["counts"]
    table = Table(title=f"{results.get('arm', 'run')}: {counts['turns']} turns, "
                  f"{counts['sessions']} sessions, {counts['personas']} personas")
    for column in ("metric", "value", "95% CI"):
        table.add_column(column)
    for key, label in HEADLINE:
        if key not in results["confidence_intervals"]:
            continue
        interval = results["confidence_intervals"][key]
        table.add_row(label, fmt(interval["estimate"]),
                      escape(f"[{fmt(interval['low'])}, {fmt(interval['high'])}]"))
    console.print(table)
