"""Distillation curve (issue 15, arm 3): how a profile-distilled per-user adapter's recall of
the user's values on implicit requests grows with examples per routine, epochs, LoRA rank and
target modules, next to what each setting costs to train.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/distill_curve.py \
        --data runs/study/data --users 2 --examples 0,6,24 --epochs 1,3 --rank 8 \
        --targets qv --out /tmp/curve

The base point is the study's `distilled-per-user` arm (`configs/study.json`): its training
and evaluation configs (context sentence in the prompt, no profile line). By default one
factor moves at a time around that base (a full product costs too much on a CPU; `--product`
runs it anyway). Every point trains per-user adapters for the chosen personas
(`run_training`) into OUT/<point>/adapters and evaluates them on the test split
(`evaluate_arm`) into OUT/<point>/run; a point whose run/results.json exists is skipped.
Writes OUT/curve.json (every point: its factor values and metrics) and OUT/distill_curve.png
(one panel per factor: recall on implicit requests, train seconds on a twin axis).

Personas: `--personas a,b`, else the `--users N` trained users with the most implicit test
turns (which users to score is the benchmark's choice; no arm reads the test split).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from adaptcommand.arms import REGISTRY
from adaptcommand.demo import DemoPlan
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.personal_values import personal_turns
from adaptcommand.evaluation.runs import Scope, evaluate_arm, load_turns
from adaptcommand.evaluation.training_info import training_cost
from adaptcommand.fileio import atomic_path, write_json_atomic
from adaptcommand.identity import SUMMARY_FILE
from adaptcommand.models.adapters import discover_adapters
from adaptcommand.report.plots import to_png
from adaptcommand.study import DEFAULT_STUDY, load_study
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.recipes import run_training

ARM = "distilled-per-user"
FACTORS = ("examples", "epochs", "rank", "targets")
LABELS = {"examples": "distilled examples per routine", "epochs": "epochs",
          "rank": "LoRA rank (alpha = 2r)", "targets": "target modules"}
TARGETS = {"qv": ["q_proj", "v_proj"],
           "all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
METRICS = ("personal_recall_implicit", "personal_recall", "param_f1")
CURVE_FILE, FIGURE_FILE = "curve.json", "distill_curve.png"


@dataclass(frozen=True)
class Point:
    """One setting of the four factors."""

    examples: int
    epochs: int
    rank: int
    targets: str

    @property
    def name(self) -> str:
        return f"ex{self.examples}_ep{self.epochs}_r{self.rank}_{self.targets}"

    def overrides(self) -> dict[str, Any]:
        """The dotted TrainingConfig keys this point sets."""
        return {"data.distill_examples_per_routine": self.examples,
                "optimizer.epochs": self.epochs, "adapter.r": self.rank,
                "adapter.alpha": 2.0 * self.rank,
                "adapter.target_modules": TARGETS[self.targets]}


def base_point(config: TrainingConfig) -> Point:
    """The point of the arm's own training config."""
    modules = list(config.adapter.target_modules)
    targets = next((key for key, names in TARGETS.items() if sorted(names) == sorted(modules)),
                   None)
    if targets is None:
        raise SystemExit(f"the base config targets {modules}: not one of {sorted(TARGETS)}")
    return Point(config.data.distill_examples_per_routine, config.optimizer.epochs,
                 config.adapter.r, targets)


def grid(base: Point, values: dict[str, Sequence[Any]], product: bool) -> list[Point]:
    """The base point, then each factor's values with the others at base (or every
    combination when `product`); no point twice."""
    if product:
        points = [Point(*combo) for combo in itertools.product(*(values[f] for f in FACTORS))]
    else:
        points = [base] + [replace(base, **{factor: value})
                           for factor in FACTORS for value in values[factor]]
    return list(dict.fromkeys(points))


def implicit_leaders(data: Path, settings: EvalConfig, n: int) -> list[str]:
    """The `n` personas with the most implicit turns in the evaluated split (ties by id)."""
    turns = personal_turns(load_turns(Scope(data=data), settings),
                           settings.prompt.max_context_messages)
    counts = Counter(key[0] for key, turn in turns.items() if turn.implicit)
    personas = sorted({key[0] for key in turns})
    return sorted(personas, key=lambda p: (-counts[p], p))[:n]


def point_row(point: Point, point_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """What curve.json records of a finished point."""
    adapters = point_dir / "adapters"
    cost = training_cost(adapters, discover_adapters(adapters))
    summary = json.loads((adapters / SUMMARY_FILE).read_text(encoding="utf-8"))
    metrics = results["metrics"]
    share = metrics.get("implicit_turn_share") or 0.0
    return {
        "point": point.name, **{f: getattr(point, f) for f in FACTORS},
        **{m: metrics.get(m) for m in METRICS},
        "turns": metrics["n_turns"], "implicit_turns": round(metrics["n_turns"] * share),
        "train_seconds": cost["train_seconds"],
        "adapter_mib": cost["adapter_bytes"] / 2**20, "n_adapters": cost["n_adapters"],
        "train_examples": sum(r["train_examples"] for r in summary["adapters"].values()),
    }


def run_point(point: Point, training: TrainingConfig, settings: EvalConfig, data: Path,
              personas: list[str], point_dir: Path) -> dict[str, Any]:
    """Train (what is not trained yet) and evaluate one point, unless its run is done."""
    results_file = point_dir / "run" / "results.json"
    if not results_file.is_file():
        run_training("per-user", training.updated(point.overrides()), data,
                     point_dir / "adapters", personas=personas, show_progress=False)
        evaluate_arm(settings, Scope(data=data, personas=personas), point_dir / "run",
                     REGISTRY[ARM].name, adapters=point_dir / "adapters", show_progress=False)
    return json.loads(results_file.read_text(encoding="utf-8"))


def run_curve(plan: DemoPlan, data: Path, out: Path, values: dict[str, Sequence[Any]],
              personas: list[str] | None = None, users: int = 2,
              product: bool = False) -> dict[str, Any]:
    """Run every point of the grid around the plan's distilled arm; write curve.json and the
    figure into `out` and return the curve."""
    arm = REGISTRY[ARM]
    training, settings = plan.training_config(arm), plan.eval_config(arm)
    base = base_point(training)
    chosen = personas or implicit_leaders(data, settings, users)
    points = grid(base, values, product)
    rows: list[dict[str, Any]] = []
    spent: list[float] = []
    for index, point in enumerate(points, 1):
        start = time.monotonic()
        done = (out / point.name / "run" / "results.json").is_file()
        results = run_point(point, training, settings, data, chosen, out / point.name)
        rows.append(point_row(point, out / point.name, results))
        if not done:
            spent.append(time.monotonic() - start)
        eta = (sum(spent) / len(spent) * (len(points) - index)) if spent else 0.0
        row = rows[-1]
        print(f"[{index}/{len(points)}] {point.name}: implicit recall "
              f"{_fmt(row['personal_recall_implicit'])} on {row['implicit_turns']} turns, "
              f"train {row['train_seconds']:.0f}s, {row['adapter_mib']:.2f} MiB"
              f"{' (done before)' if done else ''}; ETA {eta / 60:.1f} min", flush=True)
    curve = {"arm": ARM, "data": str(data), "personas": chosen, "base": base.name,
             "base_values": {f: getattr(base, f) for f in FACTORS},
             "model": training.model.name, "points": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / CURVE_FILE, curve)
    with atomic_path(out / FIGURE_FILE) as tmp:
        tmp.write_bytes(figure(curve))
    return curve


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def panel_rows(curve: dict[str, Any], factor: str) -> list[dict[str, Any]]:
    """The points where only `factor` differs from the base, in the factor's order."""
    base = curve["base_values"]
    rows = [r for r in curve["points"]
            if all(r[f] == base[f] for f in FACTORS if f != factor)]
    order = list(TARGETS) if factor == "targets" else None
    return sorted(rows, key=lambda r: order.index(r[factor]) if order else r[factor])


def figure(curve: dict[str, Any]) -> bytes:
    """One panel per factor that varies: implicit-request recall (left axis) and train seconds
    (right axis) against the factor's value, the base point's settings in the title."""
    factors = [f for f in FACTORS if len(panel_rows(curve, f)) > 1] or ["examples"]
    fig = Figure(figsize=(4.2 * len(factors), 3.6), layout="constrained")
    for ax, factor in zip(fig.subplots(1, len(factors), squeeze=False)[0], factors,
                          strict=True):
        rows = panel_rows(curve, factor)
        xs = [str(r[factor]) for r in rows]
        recall = [r["personal_recall_implicit"] or 0.0 for r in rows]
        ax.plot(xs, recall, "o-", color="tab:blue", label="recall, implicit requests")
        ax.set_ylim(0, max(1.0, *recall) * 1.05)
        ax.set_xlabel(LABELS[factor])
        ax.set_ylabel("personal-value recall (implicit)", color="tab:blue")
        twin = ax.twinx()
        twin.plot(xs, [r["train_seconds"] or 0.0 for r in rows], "s--", color="tab:orange")
        twin.set_ylabel("train seconds", color="tab:orange")
        twin.set_ylim(bottom=0)
    base = ", ".join(f"{f}={v}" for f, v in curve["base_values"].items())
    fig.suptitle(f"Distilled per-user adapters ({len(curve['personas'])} users); base: {base}",
                 fontsize=9)
    return to_png(fig)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _targets(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown targets {unknown}; known: {sorted(TARGETS)}")
    return names


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared data dir (read only)")
    parser.add_argument("--out", type=Path, required=True, help="this benchmark's output dir")
    parser.add_argument("--model", default="embedded", help="base model (as `train --model`)")
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY,
                        help="study config whose distilled-per-user arm is the base point")
    parser.add_argument("--personas", default=None, help="comma list of persona ids")
    parser.add_argument("--users", type=int, default=2,
                        help="without --personas: the N users with the most implicit test turns")
    parser.add_argument("--examples", type=_ints, default=[0, 6, 24],
                        help="data.distill_examples_per_routine values")
    parser.add_argument("--epochs", type=_ints, default=[1, 3], help="optimizer.epochs values")
    parser.add_argument("--rank", type=_ints, default=[8, 32], help="adapter.r values")
    parser.add_argument("--targets", type=_targets, default=["qv", "all"],
                        help="target modules: qv (q/v) and/or all (every linear layer)")
    parser.add_argument("--product", action="store_true",
                        help="every combination instead of one factor at a time")
    args = parser.parse_args(argv)
    plan = replace(load_study(args.study), model=args.model)
    values = {"examples": args.examples, "epochs": args.epochs, "rank": args.rank,
              "targets": args.targets}
    personas = args.personas.split(",") if args.personas else None
    return run_curve(plan, args.data, args.out, values, personas, args.users, args.product)


if __name__ == "__main__":
    main()
