"""Distillation curve (issue 15, arm 3): how a profile-distilled per-user adapter's recall of
the user's values on implicit requests grows with examples per routine, epochs, learning rate,
LoRA rank and target modules, next to what each setting costs to train.

    PYTHONPATH=src OMP_NUM_THREADS=2 .venv/bin/python benchmarks/distill_curve.py \
        --data runs/study/data --arm distilled-hybrid \
        --init-from runs/study/adapters/unified/unified --users 4 --examples 2,8,24 \
        --epochs 1,2 --lr 0.001,0.003 --out /tmp/curve-hybrid

The base point is the study's distilled arm (`--arm`, `configs/study.json`): its training and
evaluation configs (context sentence in the prompt, no profile line). By default one factor
moves at a time around that base (a full product costs too much on a CPU; `--product` runs it
anyway). Every point trains the arm's adapters for the chosen personas (`run_training`;
distilled-hybrid's start from the unified adapter `--init-from`, so their rank and target
modules are that adapter's) into OUT/<point>/adapters, evaluates them on `--split` (val by
default: settings are chosen there) into OUT/<point>/run and probes them (`run_probe`, the
routines asked for with their context only) into OUT/<point>/probe; a point whose run and
probe exist is skipped. Writes OUT/curve.json (every point: its factor values and metrics)
and OUT/distill_curve.png (one panel per factor: recall on implicit requests and the probe's
parameter recall, train seconds on a twin axis).

Personas: `--personas a,b`, else the `--users N` trained users with the most implicit turns in
the evaluated split (which users to score is the benchmark's choice; no arm reads it).
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
from adaptcommand.evaluation.probe import PROBE_FILE, run_probe
from adaptcommand.evaluation.runs import Scope, evaluate_arm, load_turns
from adaptcommand.evaluation.training_info import training_cost
from adaptcommand.fileio import atomic_path, write_json_atomic
from adaptcommand.identity import SUMMARY_FILE
from adaptcommand.models.adapters import discover_adapters
from adaptcommand.report.plots import to_png
from adaptcommand.study import DEFAULT_STUDY, load_study
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.recipes import run_training

ARMS = ("distilled-per-user", "distilled-hybrid")
FACTORS = ("examples", "epochs", "lr", "rank", "targets")
LABELS = {"examples": "distilled examples per routine", "epochs": "epochs",
          "lr": "learning rate", "rank": "LoRA rank (alpha = 2r)", "targets": "target modules"}
TARGETS = {"qv": ["q_proj", "v_proj"],
           "all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
METRICS = ("personal_recall_implicit", "personal_recall", "param_f1")
CURVE_FILE, FIGURE_FILE, SETUP_FILE = "curve.json", "distill_curve.png", "setup.json"


@dataclass(frozen=True)
class Point:
    """One setting of the five factors."""

    examples: int
    epochs: int
    lr: float
    rank: int
    targets: str

    @property
    def name(self) -> str:
        return f"ex{self.examples}_ep{self.epochs}_lr{self.lr:g}_r{self.rank}_{self.targets}"

    def overrides(self) -> dict[str, Any]:
        """The dotted TrainingConfig keys this point sets."""
        return {"data.distill_examples_per_routine": self.examples,
                "optimizer.epochs": self.epochs, "optimizer.learning_rate": self.lr,
                "adapter.r": self.rank,
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
                 config.optimizer.learning_rate, config.adapter.r, targets)


def grid(base: Point, values: dict[str, Sequence[Any]], product: bool) -> list[Point]:
    """The base point, then each factor's values with the others at base (or every
    combination when `product`); no point twice."""
    if product:
        points = [Point(*combo) for combo in itertools.product(
            *(values[f] or [getattr(base, f)] for f in FACTORS))]
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


@dataclass(frozen=True)
class Setup:
    """What every point shares: the arm, the adapter its hybrid adapters start from, the split
    it is scored on."""

    arm: str = "distilled-per-user"
    init_from: Path | None = None
    split: str = "val"

    @property
    def hybrid(self) -> bool:
        return REGISTRY[self.arm].train == "hybrid"

    def check_arm(self) -> None:
        """Refuse an unknown arm, or a starting adapter the arm does not take (or lacks)."""
        if self.arm not in ARMS:
            raise SystemExit(f"--arm {self.arm}: not one of {', '.join(ARMS)}")
        if self.hybrid != (self.init_from is not None):
            need = "needed" if self.hybrid else "for distilled-hybrid only"
            raise SystemExit(f"{self.arm}: --init-from (the unified adapter hybrid adapters "
                             f"start from) is {need}")

    def check_grid(self, base: Point, values: dict[str, Sequence[Any]]) -> None:
        """Refuse a grid this arm cannot train."""
        if self.hybrid and any(v != getattr(base, f) for f in ("rank", "targets")
                               for v in values[f]):
            raise SystemExit(f"{self.arm} starts from {self.init_from}: its rank and target "
                             "modules are that adapter's (vary them with distilled-per-user)")

    def to_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "split": self.split,
                "init_from": str(self.init_from) if self.init_from else None}

    def pin(self, out: Path) -> None:
        """Record the setup in OUT/setup.json, or refuse an OUT whose finished points were run
        with another arm, split or starting adapter (they would be reused as this one's)."""
        setup = self.to_json()
        path = out / SETUP_FILE
        if path.is_file():
            pinned = json.loads(path.read_text(encoding="utf-8"))
            if pinned != setup:
                raise SystemExit(f"{out} holds points of {pinned}, not {setup}: use another --out")
            return
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, setup)


def point_row(point: Point, point_dir: Path, results: dict[str, Any],
              probe: dict[str, Any]) -> dict[str, Any]:
    """What curve.json records of a finished point."""
    adapters = point_dir / "adapters"
    cost = training_cost(adapters, discover_adapters(adapters))
    summary = json.loads((adapters / SUMMARY_FILE).read_text(encoding="utf-8"))
    metrics = results["metrics"]
    share = metrics.get("implicit_turn_share") or 0.0
    return {
        "point": point.name, **{f: getattr(point, f) for f in FACTORS},
        **{m: metrics.get(m) for m in METRICS},
        "probe_param_recall": probe["metrics"].get("param_recall"),
        "turns": metrics["n_turns"], "implicit_turns": round(metrics["n_turns"] * share),
        "train_seconds": cost["train_seconds"],
        "adapter_mib": cost["adapter_bytes"] / 2**20, "n_adapters": cost["n_adapters"],
        "train_examples": sum(r["train_examples"] for r in summary["adapters"].values()),
    }


def _outputs(point_dir: Path) -> tuple[Path, Path]:
    return point_dir / "run" / "results.json", point_dir / "probe" / PROBE_FILE


def run_point(point: Point, training: TrainingConfig, settings: EvalConfig, setup: Setup,
              data: Path, personas: list[str], point_dir: Path
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train (what is not trained yet), evaluate and probe one point, unless both are done."""
    results_file, probe_file = _outputs(point_dir)
    arm, adapters = REGISTRY[setup.arm], point_dir / "adapters"
    scope = Scope(data=data, personas=personas)
    if not results_file.is_file():
        run_training(arm.train, training.updated(point.overrides()), data, adapters,
                     personas=personas, init_from=setup.init_from, show_progress=False)
        evaluate_arm(settings, scope, point_dir / "run", arm.name, adapters=adapters,
                     show_progress=False)
    if not probe_file.is_file():
        run_probe(settings, scope, point_dir / "probe", arm.name, adapters=adapters,
                  show_progress=False)
    return tuple(json.loads(f.read_text(encoding="utf-8")) for f in (results_file, probe_file))


def run_curve(plan: DemoPlan, data: Path, out: Path, values: dict[str, Sequence[Any]],
              personas: list[str] | None = None, users: int = 2,
              product: bool = False, setup: Setup = Setup()) -> dict[str, Any]:
    """Run every point of the grid around the plan's distilled arm; write curve.json and the
    figure into `out` and return the curve."""
    setup.check_arm()
    arm = REGISTRY[setup.arm]
    training = plan.training_config(arm)
    settings = plan.eval_config(replace(arm, split=setup.split))  # scored on the --split
    base = base_point(training)
    setup.check_grid(base, values)
    setup.pin(out)
    chosen = personas or implicit_leaders(data, settings, users)
    points = grid(base, values, product)
    rows: list[dict[str, Any]] = []
    spent: list[float] = []
    for index, point in enumerate(points, 1):
        start = time.monotonic()
        done = all(f.is_file() for f in _outputs(out / point.name))
        results, probe = run_point(point, training, settings, setup, data, chosen,
                                   out / point.name)
        rows.append(point_row(point, out / point.name, results, probe))
        if not done:
            spent.append(time.monotonic() - start)
        eta = (sum(spent) / len(spent) * (len(points) - index)) if spent else 0.0
        row = rows[-1]
        print(f"[{index}/{len(points)}] {point.name}: implicit recall "
              f"{_fmt(row['personal_recall_implicit'])} on {row['implicit_turns']} turns, "
              f"probe {_fmt(row['probe_param_recall'])}, "
              f"train {row['train_seconds']:.0f}s, {row['adapter_mib']:.2f} MiB"
              f"{' (done before)' if done else ''}; ETA {eta / 60:.1f} min", flush=True)
    curve = {**setup.to_json(), "data": str(data), "personas": chosen, "base": base.name,
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
    """One panel per factor that varies: implicit-request and probe recall (left axis) and
    train seconds (right axis) against the factor's value, the base point's settings in the
    title."""
    factors = [f for f in FACTORS if len(panel_rows(curve, f)) > 1] or ["examples"]
    fig = Figure(figsize=(4.2 * len(factors), 3.9), layout="constrained")
    for ax, factor in zip(fig.subplots(1, len(factors), squeeze=False)[0], factors,
                          strict=True):
        rows = panel_rows(curve, factor)
        xs = [str(r[factor]) for r in rows]
        recall = [r["personal_recall_implicit"] or 0.0 for r in rows]
        ax.plot(xs, recall, "o-", color="tab:blue", label="personal-value recall, implicit")
        ax.plot(xs, [r.get("probe_param_recall") or 0.0 for r in rows], "^:", color="tab:green",
                label="probe param recall")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(LABELS[factor])
        ax.set_ylabel("recall")
        twin = ax.twinx()
        twin.plot(xs, [r["train_seconds"] or 0.0 for r in rows], "s--", color="tab:orange",
                  label="train seconds (right axis)")
        twin.set_ylabel("train seconds", color="tab:orange")
        twin.set_ylim(bottom=0)
    handles = [h for axis in (ax, twin) for h in axis.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    base = ", ".join(f"{f}={v}" for f, v in curve["base_values"].items())
    fig.suptitle(f"{curve['arm']} ({len(curve['personas'])} users, {curve['split']} split); "
                 f"base: {base}", fontsize=9)
    return to_png(fig)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


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
                        help="study config whose --arm is the base point")
    parser.add_argument("--arm", default=ARMS[0], choices=ARMS, help="the distilled arm")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="distilled-hybrid: the unified adapter its adapters start from")
    parser.add_argument("--split", default="val", choices=("val", "test"),
                        help="split scored (settings are chosen on val)")
    parser.add_argument("--personas", default=None, help="comma list of persona ids")
    parser.add_argument("--users", type=int, default=2,
                        help="without --personas: the N users with the most implicit turns")
    parser.add_argument("--examples", type=_ints, default=[2, 8, 24],
                        help="data.distill_examples_per_routine values")
    parser.add_argument("--epochs", type=_ints, default=[1, 2], help="optimizer.epochs values")
    parser.add_argument("--lr", type=_floats, default=[],
                        help="optimizer.learning_rate values (default: the base's only)")
    parser.add_argument("--rank", type=_ints, default=[],
                        help="adapter.r values (default: the base's only)")
    parser.add_argument("--targets", type=_targets, default=[],
                        help="qv (q/v) and/or all (every linear layer); default: the base's")
    parser.add_argument("--product", action="store_true",
                        help="every combination instead of one factor at a time")
    args = parser.parse_args(argv)
    plan = replace(load_study(args.study), model=args.model)
    values = {"examples": args.examples, "epochs": args.epochs, "lr": args.lr,
              "rank": args.rank, "targets": args.targets}
    personas = args.personas.split(",") if args.personas else None
    return run_curve(plan, args.data, args.out, values, personas, args.users, args.product,
                     Setup(args.arm, args.init_from, args.split))


if __name__ == "__main__":
    main()
