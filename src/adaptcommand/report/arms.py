"""The report's arm order and descriptions, from the arm registry (`adaptcommand.arms`): runs
of registered arms are listed in registry order with their one-line description; other runs
keep the order they were given in and have no description."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptcommand.arms import description, order

if TYPE_CHECKING:  # report.runs sorts its groups with this module
    from adaptcommand.report.overview import OverviewRow
    from adaptcommand.report.runs import Run


def run_split(run: Run) -> str:
    """The split a run evaluated (`test` when its config does not say)."""
    return str(run.results.config.get("evaluation", {}).get("split", "test"))


def registry_order(runs: list[Run]) -> list[Run]:
    """`runs` sorted by their arms' registry positions (stable: unregistered arms last, in the
    given order)."""
    return sorted(runs, key=lambda run: order(run.results.arm, run_split(run)))


def arm_descriptions(rows: list[OverviewRow]) -> list[list[str]]:
    """[group, arm label, description] of each described run of the overview."""
    found = [[row.group, row.run.label, description(row.run.results.arm, run_split(row.run))]
             for row in rows]
    return [[group, label, text] for group, label, text in found if text]


ARMS_HEADER = ["group", "arm", "what it is"]
