"""The headline table printed at the end of an evaluation."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adaptcommand.evaluation.stats import too_few_users_text

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


def fmt_ci(interval: dict[str, Any]) -> str:
    """`[low, high] (N users)`, or why there is none (`too few users to decide: N`)."""
    n_users = interval.get("n_users")
    if interval.get("too_few_users"):
        return too_few_users_text(n_users)
    users = "" if n_users is None else f" ({n_users} users)"
    return f"[{fmt(interval['low'])}, {fmt(interval['high'])}]{users}"


def metrics_table(title: str, metrics: dict[str, float | None],
                  intervals: dict[str, dict[str, Any]], ci_label: str) -> Table:
    """One row per metric: its value and, where computed, its interval."""
    table = Table(title=title)
    for column in ("metric", "value", ci_label):
        table.add_column(column)
    for name, value in metrics.items():
        interval = intervals.get(name)
        ci = fmt_ci(interval) if interval else ""
        table.add_row(name, fmt(value), escape(ci))
    return table


def print_headline(console: Console, results: dict[str, Any]) -> None:
    """Headline metrics with their 95% intervals (personas, then sessions, resampled)."""
    counts = results["counts"]
    table = Table(title=f"{results.get('arm', 'run')}: {counts['turns']} turns, "
                  f"{counts['sessions']} sessions, {counts['personas']} personas")
    for column in ("metric", "value", "95% CI"):
        table.add_column(column)
    for key, label in HEADLINE:
        if key not in results["confidence_intervals"]:
            continue
        interval = results["confidence_intervals"][key]
        table.add_row(label, fmt(interval["estimate"]), escape(fmt_ci(interval)))
    console.print(table)
