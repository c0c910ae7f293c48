"""The main job end to end: data -> baseline -> three training strategies -> evaluation and
preference probe -> report. Every stage is resumable, so a demo started again continues where
it stopped.

The default plan is sized for a 2-core CPU (under 15 minutes with the embedded model); the full
plan is the reference setup (200 x 50 sessions, Qwen2.5-0.5B-Instruct, reference LoRA) for a GPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from adaptcommand.data.io import DIALOGUES_FILE
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.synth import synthesize
from adaptcommand.evaluation.probe import run_probe
from adaptcommand.evaluation.runs import Scope, evaluate_arm, resolve_config
from adaptcommand.report.build import build_report
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.runner import UNIFIED, run_training

# The small plan shortens the prompt: on a CPU every prompt token costs training time, and a
# long system prompt would be most of each example.
SHORT_SYSTEM_PROMPT = (
    "You are a smart-home assistant for TV, AC, lights, speaker and security. "
    "State every setting you apply with its value."
)
ARMS = ("unified", "per-user", "hybrid")


@dataclass(frozen=True)
class DemoPlan:
    """Sizes and settings of one demo; `small()` for a CPU, `full()` for the reference."""

    personas: int
    sessions: int
    model: str
    training: dict[str, Any]  # TrainingConfig fields shared by every arm
    evaluation: dict[str, Any]  # dotted EvalConfig overrides
    arm_training: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-arm extras
    seed: int = 0
    source: Path | None = None  # real EdgeWisePersona files instead of synthetic ones

    @classmethod
    def small(cls) -> DemoPlan:
        prompt = {"system_prompt": SHORT_SYSTEM_PROMPT, "max_context_messages": 3}
        return cls(
            personas=4,
            sessions=16,
            model="embedded",
            # One adapter per pass keeps CPU batches at the size a CPU runs fastest.
            training={"epochs": 1, "max_length": 256, "patience": None, "learning_rate": 1e-3,
                      "adapters_per_step": 1, **prompt},
            # A per-user adapter sees only its own user's sessions: give it a second epoch.
            arm_training={"per-user": {"epochs": 2}},
            # Evaluate from the second assistant turn on: more turns for the same sessions.
            evaluation={"generation.max_new_tokens": 40, "generation.batch_size": 8,
                        "evaluation.skip_assistant_turns": 1,
                        **{f"prompt.{k}": v for k, v in prompt.items()}},
        )

    @classmethod
    def full(cls, source: Path | None = None) -> DemoPlan:
        return cls(personas=200, sessions=50, model="Qwen/Qwen2.5-0.5B-Instruct", training={},
                   evaluation={}, source=source)


def run_demo(out: Path, plan: DemoPlan, console: Console | None = None) -> Path:
    """Run every stage into `out` (skipping finished work) and return the report directory."""
    console = console or Console()
    data = _stage(console, "data", lambda: _prepare_data(out, plan))
    scope = Scope(data=data)
    settings = resolve_config(None, {"model.name": plan.model, **plan.evaluation})
    runs = [out / "runs" / "baseline"]
    _stage(console, "baseline", lambda: evaluate_arm(settings, scope, runs[0], "baseline"))
    _stage(console, "probe baseline", lambda: run_probe(settings, scope, runs[0], "baseline"))
    adapters = out / "adapters"
    init = {"hybrid": adapters / "unified" / UNIFIED}
    for arm in ARMS:
        config = TrainingConfig.model_validate({"model": plan.model, "seed": plan.seed,
                                                **plan.training, **plan.arm_training.get(arm, {})})
        _stage(console, f"train {arm}", lambda arm=arm, config=config: run_training(
            arm, config, data, adapters / arm, init_from=init.get(arm)))
        runs.append(out / "runs" / arm)
        _stage(console, f"eval {arm}", lambda arm=arm: evaluate_arm(
            settings, scope, runs[-1], arm, adapters=adapters / arm))
        _stage(console, f"probe {arm}", lambda arm=arm: run_probe(
            settings, scope, runs[-1], arm, adapters=adapters / arm))
    report_dir = out / "report"
    _stage(console, "report", lambda: build_report(runs, report_dir))
    return report_dir


def _prepare_data(out: Path, plan: DemoPlan) -> Path:
    source = plan.source
    if source is None:
        source = out / "raw"
        if not (source / "sessions.jsonl").is_file():
            synthesize(plan.personas, plan.sessions, plan.seed, source)
    data = out / "data"
    if not (data / DIALOGUES_FILE).is_file():
        prepare_from_source(source, data)
    return data


def _stage(console: Console, name: str, work: Callable[[], Any]) -> Any:
    console.rule(f"[bold]{name}")
    start = time.perf_counter()
    result = work()
    console.print(f"[green]{name} done[/] in {time.perf_counter() - start:.0f} s")
    return result
