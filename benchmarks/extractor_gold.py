"""Accuracy and speed of the action extractor on a hand-labelled gold file.

    .venv/bin/python benchmarks/extractor_gold.py [--gold PATH] [--output results.json]
    .venv/bin/python benchmarks/extractor_gold.py --gold data/gold_model_replies/gold.jsonl \
        --group arm --group prompt_source --errors

Prints a Markdown table of micro precision/recall/F1 at device level and at (device, param,
value) level, for all messages and split by each `--group` field (default: role); `--errors`
lists every message the extractor gets wrong; `--output` also writes the full counts.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from adaptcommand.evaluation.action_metrics import ActionScores, score_labelled_jsonl
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.fileio import read_jsonl, write_json_atomic

DEFAULT_GOLD = (Path(os.environ.get("ADAPTCOMMAND_SAMPLE_DIR", "/work/shared/edgewisepersona"))
                / "gold_actions_dev.jsonl")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table(scores: dict[str, ActionScores]) -> str:
    """Markdown table: one row per message group, P/R/F1 at both levels."""
    lines = ["| messages | n | device P | device R | device F1 | param P | param R | param F1 |",
             "|---|---|---|---|---|---|---|---|"]
    for group, s in scores.items():
        cells = [group, str(s.turns)]
        for counts in (s.device, s.param):
            cells += [_fmt(counts.precision), _fmt(counts.recall), _fmt(counts.f1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grouped_scores(path: Path, groups: list[str]) -> dict[str, ActionScores]:
    """"all" plus one row per value of each group field ("arm=baseline", ...)."""
    scores: dict[str, ActionScores] = {}
    for field in groups:
        for name, counts in score_labelled_jsonl(path, extract_actions, group_field=field).items():
            scores[name if name == "all" or len(groups) == 1 else f"{field}={name}"] = counts
    return scores


def errors(path: Path) -> list[str]:
    """One line per message whose extraction differs from its label."""
    lines = []
    for line, row in read_jsonl(path):
        got = extract_actions(row["text"])
        if got != row["actions"]:
            lines.append(f"{path.name}:{line}: {row['text']!r}\n    gold {row['actions']}\n"
                         f"    got  {got}")
    return lines


def throughput(path: Path, repeats: int = 5) -> float:
    """Texts per second of `extract_actions` over the gold texts."""
    texts = [row["text"] for _, row in read_jsonl(path)]
    start = time.perf_counter()
    for _ in range(repeats):
        for text in texts:
            extract_actions(text)
    return repeats * len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD,
                        help="Gold JSONL: one message per line with role, text and actions.")
    parser.add_argument("--group", action="append", default=None,
                        help="Field to split the scores by (repeatable; default: role).")
    parser.add_argument("--errors", action="store_true",
                        help="Also list every message the extractor gets wrong.")
    parser.add_argument("--output", type=Path, default=None,
                        help="Optional JSON file for the full counts and the throughput.")
    args = parser.parse_args()
    scores = grouped_scores(args.gold, args.group or ["role"])
    speed = throughput(args.gold)
    print(f"gold: {args.gold}")
    print(table(scores))
    print(f"\nthroughput: {speed:,.0f} texts/s (one process)")
    print("per-device counts (all):", {d: (c.tp, c.fp, c.fn)
                                       for d, c in scores["all"].per_device.items()})
    if args.errors:
        print("\n".join(["", "errors:", *errors(args.gold)]))
    if args.output is not None:
        write_json_atomic(args.output, {"gold": str(args.gold), "texts_per_second": speed,
                                        "scores": {g: s.to_dict() for g, s in scores.items()}})


if __name__ == "__main__":
    main()
