"""The main job end to end: data -> baseline -> training strategies -> evaluation and
preference probe of every arm -> report. Every stage is resumable, so a demo started again
continues where it stopped, and `--all-arms` run after a plain demo only adds the other arms.

The default plan is sized for a 2-core CPU (under 15 minutes with the embedded model); the full
plan is the reference setup (200 x 50 sessions, Qwen2.5-0.5B-Instruct, reference LoRA) for a GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from adaptcommand.config import set_dotted
from adaptcommand.data.io import DIALOGUES_FILE
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.splits import SplitConfig
from adaptcommand.data.synth import synthesize
from adaptcommand.evaluation.probe import run_probe
from adaptcommand.evaluation.runs import Scope, evaluate_arm, resolve_config
from adaptcommand.report.build import build_report
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.merging import merge_adapters
from adaptcommand.training.runner import UNIFIED, run_training

# The small plan shortens the prompt: on a CPU every prompt token costs training time, and a
# long system prompt would be most of each example.
SHORT_SYSTEM_PROMPT = (
    "You are a smart-home assistant for TV, AC, lights, speaker and security. "
    "State every setting you apply with its value."
)
COLD_START = "cold_start"


@dataclass(frozen=True)
class Arm:
    """One arm of the comparison: where its adapters come from and how it is evaluated.

    `train` trains the arm's own adapters (a runner strategy), `merge_from` merges them from
    another arm's per-user adapters, `adapters_of` reuses another arm's adapters; none of the
    three: the base model. `split` picks the users: returning users (test) or held-out new users
    (cold_start), each group compared with its own baseline.
    """

    name: str
    train: str | None = None
    method: str = "lora"
    init_from: str | None = None  # arm whose unified adapter a hybrid run starts from
    merge_from: str | None = None
    adapters_of: str | None = None
    retrieval_k: int = 0
    split: str = "test"


CORE_ARMS = (
    Arm("baseline"),
    Arm("unified", train="unified"),
    Arm("per-user", train="per-user"),
    Arm("hybrid", train="hybrid", init_from="unified"),
)
EXTRA_ARMS = (
    Arm("memory", retrieval_k=3),
    Arm("per-user+memory", adapters_of="per-user", retrieval_k=3),
    Arm("cluster", train="cluster"),
    Arm("prefix-unified", train="unified", method="prefix"),
    Arm("prefix-per-user", train="per-user", method="prefix"),
    Arm("baseline", split=COLD_START),
    Arm("unified", adapters_of="unified", split=COLD_START),
    Arm("merged", merge_from="per-user", split=COLD_START),
)


@dataclass(frozen=True)
class DemoPlan:
    """Sizes and settings of one demo; `small()` for a CPU, `full()` for the reference."""

    personas: int  # trained users
    sessions: int
    model: str
    training: dict[str, Any]  # dotted TrainingConfig overrides shared by every arm
    evaluation: dict[str, Any]  # dotted EvalConfig overrides
    arm_training: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-arm extras
    cold_start_personas: int = 0  # new users held out of all training (cold-start arms)
    cold_start_sessions: int = 10  # their first sessions, evaluated
    seed: int = 0
    source: Path | None = None  # real EdgeWisePersona files instead of synthetic ones

    @classmethod
    def small(cls) -> DemoPlan:
        prompt = {"prompt.system_prompt": SHORT_SYSTEM_PROMPT, "prompt.max_context_messages": 3}
        return cls(
            personas=4,
            sessions=16,
            model="embedded",
            training={"optimizer.epochs": 1, "data.max_length": 256,
                      "early_stopping.patience": None, "optimizer.learning_rate": 1e-3, **prompt},
            # A per-user adapter sees only its own user's sessions: give it a second epoch;
            # a prefix has no base-weight update to lean on, it needs a higher rate.
            arm_training={"per-user": {"optimizer.epochs": 2}, "hybrid": {"optimizer.epochs": 2},
                          "prefix-unified": {"optimizer.learning_rate": 1e-2},
                          "prefix-per-user": {"optimizer.epochs": 2,
                                              "optimizer.learning_rate": 1e-2},
                          "cluster": {"cluster.k": 2}},
            cold_start_personas=3,
            cold_start_sessions=4,
            # Evaluate from the second assistant turn on: more turns for the same sessions.
            evaluation={"generation.max_new_tokens": 40, "generation.batch_size": 16,
                        "evaluation.skip_assistant_turns": 1,
                        **prompt},
        )

    @classmethod
    def full(cls, source: Path | None = None, all_arms: bool = False) -> DemoPlan:
        return cls(personas=200, sessions=50, model="Qwen/Qwen2.5-0.5B-Instruct", training={},
                   evaluation={}, cold_start_personas=20 if all_arms else 0, source=source)


def plan_arms(plan: DemoPlan, all_arms: bool) -> list[Arm]:
    """The core arms, plus every other arm when asked (cold-start ones need held-out users)."""
    arms = [*CORE_ARMS, *(EXTRA_ARMS if all_arms else ())]
    return [arm for arm in arms if arm.split != COLD_START or plan.cold_start_personas]


def run_demo(out: Path, plan: DemoPlan, console: Console | None = None,
             all_arms: bool = False) -> Path:
    """Run every stage into `out` (skipping finished work) and return the report directory."""
    console = console or Console()
    data = _stage(console, "data", lambda: _prepare_data(out, plan))
    scope = Scope(data=data)
    settings = resolve_config(None, {"model.name": plan.model, **plan.evaluation})
    runs = []
    for arm in plan_arms(plan, all_arms):
        adapters = _arm_adapters(console, arm, plan, data, out / "adapters")
        arm_settings = settings.model_copy(update={"evaluation": settings.evaluation.model_copy(
            update={"split": arm.split})})
        run = out / "runs" / (arm.name if arm.split == "test" else f"{arm.split}/{arm.name}")
        for name, work in (("eval", evaluate_arm), ("probe", run_probe)):
            _stage(console, f"{name} {arm.split} {arm.name}", partial(
                work, arm_settings, scope, run, arm.name, adapters=adapters,
                retrieval_k=arm.retrieval_k))
        runs.append(run)
    report_dir = out / "report"
    _stage(console, "report", lambda: build_report(runs, report_dir))
    return report_dir


def _arm_adapters(console: Console, arm: Arm, plan: DemoPlan, data: Path,
                  root: Path) -> Path | None:
    """The arm's adapter directory, trained or merged into `root/<arm>` first when it makes
    its own (resuming); None for the base model."""
    if arm.adapters_of:
        return root / arm.adapters_of
    if not (arm.train or arm.merge_from):
        return None
    target = root / arm.name
    if arm.merge_from:
        _stage(console, f"merge {arm.name}",
               lambda: merge_adapters(root / arm.merge_from, data, target))
        return target
    raw: dict[str, Any] = {"model": {"name": plan.model}, "seed": plan.seed,
                           "adapter": {"method": arm.method}}
    for key, value in {**plan.training, **plan.arm_training.get(arm.name, {})}.items():
        set_dotted(raw, key, value)
    config = TrainingConfig.model_validate(raw)
    init = root / arm.init_from / UNIFIED if arm.init_from else None
    _stage(console, f"train {arm.name}",
           lambda: run_training(arm.train, config, data, target, init_from=init))
    return target


def _prepare_data(out: Path, plan: DemoPlan) -> Path:
    source = plan.source
    if source is None:
        source = out / "raw"
        if not (source / "sessions.jsonl").is_file():
            synthesize(plan.personas + plan.cold_start_personas, plan.sessions, plan.seed,
                       source)
    data = out / "data"
    if not (data / DIALOGUES_FILE).is_file():
        prepare_from_source(source, data, SplitConfig(
            cold_start_personas=plan.cold_start_personas,
            cold_start_sessions=plan.cold_start_sessions, seed=plan.seed))
    return data


def _stage(console: Console, name: str, work: Callable[[], Any]) -> Any:
    console.rule(f"[bold]{name}")
    start = time.perf_counter()
    result = work()
    console.print(f"[green]{name} done[/] in {time.perf_counter() - start:.0f} s")
    return result
