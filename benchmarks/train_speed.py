"""Training speed: the usual one-Trainer-per-persona loop against the multi-adapter engine.

    .venv/bin/python benchmarks/train_speed.py --model embedded --personas 8 --sessions 4 \
        --epochs 1 --threads 1

Every arm learns the same thing: each persona's first `sessions` train sessions, every
assistant reply in them supervised once with its evaluation prompt, for `epochs` epochs, with
the reference hyper-parameters, in one process on one machine:

- loop: per persona, load the base model, `peft.get_peft_model`, a fresh `transformers.Trainer`
  (right-padding `DataCollatorForSeq2Seq`) over one example per assistant turn, train,
  `save_pretrained`: the usual way, as published runs do it.
- engine: load once, `training.engine.train_adapters` with its defaults (session examples,
  `adapters_per_step` personas per pass), each adapter saved as it finishes.
- unified: the same engine, one adapter over all personas' examples (tokens/s reference).

Prints the loop/engine ratio of seconds per adapter (target >= 5) and per-user engine tokens/s
over unified tokens/s (target >= 0.8), each by wall clock and by this process's CPU time (other
jobs on a shared machine inflate the first, hardly the second; `--threads 1` steadies both),
and writes every phase's timings as JSON (--output). `tokens` counts the tokens an arm feeds
the model (session examples need fewer); `supervised_tokens`, equal across arms, what it learns.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from adaptcommand.data.io import load_split
from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.loading import load_model
from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT
from adaptcommand.training.batching import IGNORE_INDEX, Example
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.engine import AdapterJob, StepReport, train_adapters
from adaptcommand.training.examples import ExampleUnit, build_examples, turn_terminator
from adaptcommand.training.export import lora_config, save_adapter
from adaptcommand.training.multi_lora import MultiLora


def benchmark_data(data: Path | None, personas: int, workdir: Path) -> Path:
    """A prepared data directory: the given one, or a freshly synthesized corpus."""
    if data is not None:
        return data
    from adaptcommand.data.prepare import prepare_from_source
    from adaptcommand.data.synth import synthesize

    synthesize(personas, 50, 0, workdir / "source")
    prepare_from_source(workdir / "source", workdir / "data")
    return workdir / "data"


def persona_examples(config: TrainingConfig, data: Path, personas: int,
                     sessions: int) -> dict[ExampleUnit, dict[str, list[Example]]]:
    """Per example unit, the examples of each persona's first `sessions` train sessions in the
    project's prompt format: both units supervise the same reply tokens in the same contexts."""
    loaded = load_model(config.model.name, device=config.model.device, dtype=config.model.dtype)
    eot = turn_terminator(loaded.tokenizer, loaded.end_of_turn_ids)
    train = load_split(data, "train")
    units: tuple[ExampleUnit, ...] = ("turn", "session")
    return {unit: {p: build_examples(loaded.tokenizer, train[p][:sessions], end_of_turn_id=eot,
                                     system_prompt=config.prompt.system_prompt,
                                     max_context_messages=config.prompt.max_context_messages,
                                     max_length=config.data.max_length, unit=unit)
                   for p in list(train)[:personas]} for unit in units}


class Phases:
    """Wall and CPU seconds (this process, all threads) per named phase. On a shared machine
    other jobs inflate wall time but hardly this process's CPU time, so compare both."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall[name] += time.perf_counter() - wall
        self.cpu[name] += time.process_time() - cpu

    def report(self, examples: dict[str, list[Example]]) -> dict[str, Any]:
        """Totals, per-adapter seconds and train-phase tokens/s, by both clocks."""
        rows = [e for group in examples.values() for e in group]
        tokens = sum(len(e) for e in rows)
        result: dict[str, Any] = {
            "adapters": len(examples), "examples": len(rows), "tokens": tokens,
            "supervised_tokens": sum(t != IGNORE_INDEX for e in rows for t in e.labels)}
        for clock, phases in (("wall", self.wall), ("cpu", self.cpu)):
            total = sum(phases.values())
            result[clock] = {"phases": {k: round(v, 2) for k, v in phases.items()},
                             "seconds_per_adapter": round(total / len(examples), 2),
                             "train_tokens_per_second": round(tokens / phases["train"], 1)}
        return result


def run_loop(config: TrainingConfig, examples: dict[str, list[Example]],
             out: Path) -> dict[str, Any]:
    """The usual way, per persona: load, PEFT + Trainer setup, train the epochs, save."""
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    clock = Phases()
    padded = 0
    for persona, rows in examples.items():
        with clock("load"):
            loaded = load_model(config.model.name, device=config.model.device,
                                dtype=config.model.dtype)
            loaded.tokenizer.padding_side = "right"  # training pads right: positions stay put
        with clock("setup"):
            model = get_peft_model(loaded.model, lora_config(config, None))
            optimizer = config.optimizer
            args = TrainingArguments(
                output_dir=str(out / "trainer"), per_device_train_batch_size=optimizer.batch_size,
                num_train_epochs=optimizer.epochs, learning_rate=optimizer.learning_rate,
                weight_decay=optimizer.weight_decay, warmup_steps=optimizer.warmup_ratio,
                lr_scheduler_type=optimizer.lr_scheduler,
                max_grad_norm=optimizer.max_grad_norm or 0.0, seed=config.seed,
                save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
                use_cpu=loaded.device.type == "cpu", bf16=loaded.dtype == torch.bfloat16)
            dataset = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in rows]
            collator = DataCollatorForSeq2Seq(loaded.tokenizer, padding=True)
            trainer = Trainer(model=model, args=args, train_dataset=dataset,
                              data_collator=collator)
        with clock("train"):
            trainer.train()
        with clock("save"):
            model.save_pretrained(str(out / "loop" / persona))
        # tokens the Trainer's batches carry with padding (its own seeded sampler order)
        padded += sum(batch["input_ids"].numel() for batch in trainer.get_train_dataloader())
    return clock.report(examples) | {"padded_tokens": padded}


def run_engine(config: TrainingConfig, jobs: list[AdapterJob], out: Path) -> dict[str, Any]:
    """Load once, train every job with the multi-adapter engine, saving each adapter."""
    clock = Phases()
    with clock("load"):
        loaded = load_model(config.model.name, device=config.model.device,
                            dtype=config.model.dtype)
        adapter = config.adapter
        lora = MultiLora(loaded.model, adapter.target_modules, adapter.r, adapter.alpha,
                         adapter.dropout)
    peft_config = lora_config(config, config.model.name)
    steps: list[StepReport] = []
    with clock("train"):
        train_adapters(loaded.model, lora, jobs, config,
                       lambda result: save_adapter(out / result.name, result.state, peft_config,
                                                   result.record()),
                       steps.append)
    return clock.report({j.name: j.train for j in jobs}) | {"steps": len(steps)}


def _ratios(loop: dict[str, Any] | None, per_user: dict[str, Any],
            unified: dict[str, Any]) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    for clock in ("wall", "cpu"):
        if loop is not None:
            ratios[f"engine_speedup_per_adapter_{clock}"] = round(
                loop[clock]["seconds_per_adapter"] / per_user[clock]["seconds_per_adapter"], 2)
        ratios[f"per_user_vs_unified_tokens_per_second_{clock}"] = round(
            per_user[clock]["train_tokens_per_second"]
            / unified[clock]["train_tokens_per_second"], 3)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded", help="Base model name (load_model).")
    parser.add_argument("--personas", type=int, default=8, help="Personas (adapters) to train.")
    parser.add_argument("--sessions", type=int, default=4,
                        help="Train sessions per persona (its first ones) every arm learns.")
    parser.add_argument("--epochs", type=int, default=1, help="Epochs over those sessions.")
    parser.add_argument("--data", type=Path, default=None,
                        help="Prepared data directory (default: synthesize one).")
    parser.add_argument("--adapters-per-step", type=int, default=None,
                        help="Engine: personas packed into one forward/backward pass "
                        "(default: the engine's auto choice, 1 on a CPU, 8 on a GPU).")
    parser.add_argument("--skip-loop", action="store_true",
                        help="Only time the engine arms (the loop is the slow one).")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is steadier on a "
                        "busy machine.")
    parser.add_argument("--output", type=Path, default=Path("runs/train_speed.json"),
                        help="Where to write the JSON result.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = TrainingConfig.model_validate({
        "model": {"name": args.model}, "prompt": {"system_prompt": DEFAULT_SYSTEM_PROMPT},
        "optimizer": {"epochs": args.epochs},
        "throughput": {"adapters_per_step": args.adapters_per_step}})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = benchmark_data(args.data, args.personas, work)
        by_unit = persona_examples(config, data, args.personas, args.sessions)
        examples = by_unit[config.data.example_unit]  # the engine's default
        per_user = run_engine(config, [AdapterJob(p, rows, []) for p, rows in examples.items()],
                              work / "engine")
        unified = run_engine(config, [AdapterJob("unified", [e for rows in examples.values()
                                                             for e in rows], [])],
                             work / "unified")
        loop = None if args.skip_loop else run_loop(config, by_unit["turn"], work)
    result = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available()},
        "model": args.model, "personas": len(examples), "sessions_per_persona": args.sessions,
        "epochs": config.optimizer.epochs, "batch_size": config.optimizer.batch_size,
        "adapters_per_step": config.throughput.adapters_per_step or "auto",
        "engine_example_unit": config.data.example_unit,
        "loop": loop, "engine": per_user, "unified": unified,
        "ratios": _ratios(loop, per_user, unified),
    }
    write_json_atomic(args.output, result)
    for name, value in result["ratios"].items():
        target = ">= 5" if name.startswith("engine_speedup") else ">= 0.8"
        print(f"{name}: {value} (target {target})")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
