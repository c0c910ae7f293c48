"""Evaluation speed: turns per second of `baseline` generation at batch size 1 and batched.

    .venv/bin/python benchmarks/baseline_speed.py --model embedded --turns 32 --batch-size 8

Both arms generate the same turns (a synthesized, prepared corpus; greedy, reference prompt)
on the same loaded model in one process, so the ratio is measured in one run on one machine.
Greedy replies must be identical in both arms; the script checks it.
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
from adaptcommand.evaluation.predictor import make_predictor
from adaptcommand.evaluation.turns import select_turns
from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.loading import load_model


def timed_predictions(predictor, turns) -> tuple[list[str], float]:
    start = time.perf_counter()
    replies = predictor(turns)
    return replies, time.perf_counter() - start


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
    results = {}
    replies = {}
    for batch in (1, args.batch_size):
        config = EvalConfig.model_validate({"model": {"name": args.model}, "generation": {
            "batch_size": batch, "max_new_tokens": args.max_new_tokens}})
        replies[batch], seconds = timed_predictions(make_predictor(loaded, config), turns)
        results[f"batch_{batch}"] = {"seconds": round(seconds, 2),
                                     "turns_per_second": round(len(turns) / seconds, 3)}
        print(f"batch {batch:>3}: {len(turns)} turns in {seconds:.1f} s "
              f"({len(turns) / seconds:.2f} turns/s)")
    speedup = results[f"batch_{args.batch_size}"]["turns_per_second"] / results["batch_1"][
        "turns_per_second"]
    identical = replies[1] == replies[args.batch_size]
    print(f"batched / one at a time: {speedup:.2f}x; identical replies: {identical}")
    write_json_atomic(args.output, {"model": args.model, "turns": len(turns),
                                    "threads": torch.get_num_threads(),
                                    "max_new_tokens": args.max_new_tokens, **results,
                                    "speedup": round(speedup, 2), "identical_replies": identical})


if __name__ == "__main__":
    main()
