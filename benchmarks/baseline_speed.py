"""Evaluation speed: turns per second of `baseline` generation, one turn at a time vs batched.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/baseline_speed.py --model embedded --turns 48

Arms generate the same turns (a synthesized, prepared corpus; greedy, reference prompt) on the
same loaded model in one process, so the ratios are measured in one run on one machine:

- one turn at a time, plain `model.generate` (the usual way: no prefix cache, no batching);
- static batches of the default size with the shared system-prompt cache (each batch runs
  until its longest reply ends);
- the defaults: continuous batching with prompt-prefix reuse (models.continuous).

Turns go through the evaluation harness's `predict_turns` in the chunks `run_evaluation` uses,
so prefixes are reused the way `eval` reuses them. Greedy replies must be identical in all
arms; the script checks it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from adaptcommand.data.io import load_split
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.synth import synthesize
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.harness import CHUNK_BATCHES, predict_turns
from adaptcommand.evaluation.predictor import make_predictor
from adaptcommand.evaluation.turns import select_turns
from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.loading import load_model


def timed_predictions(loaded, config: EvalConfig, turns) -> tuple[list[str], float]:
    """Replies and seconds, chunked as `run_evaluation` chunks (no resume: a fresh directory)."""
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        records = predict_turns(turns, make_predictor(loaded, config), Path(out_dir),
                                config.generation.batch_size * CHUNK_BATCHES,
                                show_progress=False)
        seconds = time.perf_counter() - start
    return [record["prediction"] for record in records], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--turns", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=EvalConfig().generation.batch_size)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--output", type=Path, default=Path("runs/baseline_speed.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        synthesize(8, 20, 0, Path(tmp) / "raw")
        prepare_from_source(Path(tmp) / "raw", Path(tmp) / "data")
        turns = select_turns(load_split(Path(tmp) / "data", "test"), 2)[: args.turns]
    loaded = load_model(args.model)
    arms = {"one_at_a_time": (1, False, False),
            f"static_batch_{args.batch_size}_prefix_cache": (args.batch_size, True, False),
            f"continuous_batch_{args.batch_size}_prefix_reuse": (args.batch_size, True, True)}
    results, replies = {}, {}
    for name, (batch, prefix_cache, continuous) in arms.items():
        config = EvalConfig.model_validate({"model": {"name": args.model}, "generation": {
            "batch_size": batch, "max_new_tokens": args.max_new_tokens,
            "prefix_cache": prefix_cache, "continuous_batching": continuous}})
        replies[name], seconds = timed_predictions(loaded, config, turns)
        results[name] = {"batch_size": batch, "prefix_cache": prefix_cache,
                         "continuous_batching": continuous, "seconds": round(seconds, 2),
                         "turns_per_second": round(len(turns) / seconds, 3)}
        print(f"{name:>24}: {len(turns)} turns in {seconds:.1f} s "
              f"({len(turns) / seconds:.2f} turns/s)")
    first, last = list(arms)[0], list(arms)[-1]
    speedup = results[last]["turns_per_second"] / results[first]["turns_per_second"]
    identical = all(replies[name] == replies[first] for name in arms)
    print(f"{last} / {first}: {speedup:.2f}x; identical replies: {identical}")
    write_json_atomic(args.output, {"model": args.model, "turns": len(turns),
                                    "threads": torch.get_num_threads(),
                                    "max_new_tokens": args.max_new_tokens, **results,
                                    "speedup": round(speedup, 2), "identical_replies": identical})


if __name__ == "__main__":
    main()
