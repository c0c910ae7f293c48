"""The report's user-model sections: what the mined routines know before any language model
(the probe answered by the mined profile, next to every probed arm) and the learning curve of
routine reconstruction (miner and LLM rows beside the published ones).

Inputs are directories given to `compare --user-model DIR`: each may hold a `curve.json`
(`routines curve`) and/or a `probe.json` (`probe --profiles`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from adaptcommand.arms.profile_answer import PROFILE_ANSWER_ARM
from adaptcommand.errors import DataError
from adaptcommand.report.overview import OverviewRow
from adaptcommand.routines.curve import CURVE_JSON, CURVE_PNG, curve_plot, curve_table

PROBE_JSON = "probe.json"


@dataclass
class UserModelInputs:
    """What the `--user-model` directories hold."""

    curves: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.curves or self.probes)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None


def load_user_model(dirs: Sequence[Path]) -> UserModelInputs:
    """Curves and probes of the given directories; a directory with neither is refused."""
    inputs = UserModelInputs()
    for directory in map(Path, dirs):
        found = [name for name in (CURVE_JSON, PROBE_JSON) if (directory / name).is_file()]
        if not found:
            raise DataError(f"holds neither {CURVE_JSON} (`routines curve`) nor {PROBE_JSON} "
                            "(`probe --profiles`)", path=directory)
        if CURVE_JSON in found:
            inputs.curves.append(_read_json(directory / CURVE_JSON))
        if PROBE_JSON in found:
            probe = _read_json(directory / PROBE_JSON)
            if not isinstance(probe.get("metrics"), dict):
                raise DataError("no metrics", path=directory / PROBE_JSON, field="metrics")
            inputs.probes.append(probe)
    return inputs


def probe_table(inputs: UserModelInputs, rows: Sequence[OverviewRow]
                ) -> tuple[list[str], list[list[str]]]:
    """The mined profile's probe rows first, then every probed arm's, same columns."""
    from adaptcommand.report.markdown import fmt

    entries = [(p.get("arm", PROFILE_ANSWER_ARM), p["metrics"]) for p in inputs.probes]
    entries += [(f"{row.run.label} ({row.group})", row.run.probe.metrics)
                for row in rows if row.run.probe]
    names = list(dict.fromkeys(n for _, metrics in entries for n in metrics))
    return ["answered by", *names], [[label, *(fmt(m.get(n)) for n in names)]
                                     for label, m in entries]


def curve_figures(inputs: UserModelInputs) -> dict[str, tuple[str, bytes]]:
    """curve.png per curve (prefixed from the second on)."""
    return {(CURVE_PNG if i == 0 else f"curve-{i}.png"):
            ("Routine reconstruction against sessions used", curve_plot(curve))
            for i, curve in enumerate(inputs.curves)}


def user_model_html(inputs: UserModelInputs, rows: Sequence[OverviewRow],
                    figures: dict[str, tuple[str, bytes]]) -> list[str]:
    """The HTML sections (empty without inputs)."""
    from adaptcommand.report.html import figure_tags, section, table

    parts = []
    if inputs.probes:
        header, body = probe_table(inputs, rows)
        intro = ("<p>The preference probe answered straight from the mined routines (the "
                 "routine whose triggers the probe's context satisfies; none: nothing set), "
                 "beside every probed arm: what the user model knows before any language model "
                 "is involved.</p>")
        parts.append(section("User model: preference probe", intro, table(header, body)))
    for curve, tags in zip(inputs.curves, figure_tags(figures), strict=False):
        header, body = curve_table(curve)
        intro = (f"<p>EdgeWisePersona's routine reconstruction on <code>{escape(curve['data'])}"
                 "</code> (train split; each persona's most recent N sessions), miner and "
                 "language-model rows, beside the published rows (real data, the whole history "
                 "in one prompt). Rows say how many personas they cover.</p>")
        parts.append(section("User model: learning curve", intro, table(header, body), tags))
    return parts


def user_model_markdown(inputs: UserModelInputs, rows: Sequence[OverviewRow]) -> str:
    """The same tables for summary.md ("" without inputs)."""
    from adaptcommand.report.markdown import markdown_table

    lines: list[str] = []
    if inputs.probes:
        lines += ["", "## User model: preference probe", "",
                  *markdown_table(*probe_table(inputs, rows))]
    for curve in inputs.curves:
        lines += ["", "## User model: learning curve", "", *markdown_table(*curve_table(curve))]
    return "\n".join(lines) + ("\n" if lines else "")
