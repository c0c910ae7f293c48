"""The report's arm descriptions, from the arm registry (`adaptcommand.arms`): each run of a
registered arm gets its one-line description; other runs have none. (Runs keep the order they
are given in; the demo gives them in registry order.)"""

from __future__ import annotations

from adaptcommand.arms import description
from adaptcommand.report.overview import OverviewRow
from adaptcommand.report.run_results import Run


def run_split(run: Run) -> str:
    """The split a run evaluated (`test` when its config does not say)."""
    return str(run.results.config.get("evaluation", {}).get("split", "test"))


def arm_descriptions(rows: list[OverviewRow]) -> list[list[str]]:
    """[group, arm label, description] of each described run of the overview."""
    found = [[row.group, row.run.label, description(row.run.results.arm, run_split(row.run))]
             for row in rows]
    return [[group, label, text] for group, label, text in found if text]


ARMS_HEADER = ["group", "arm", "what it is"]
