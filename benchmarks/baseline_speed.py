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

Each arm also reports its peak memory above what was held when it started: on CUDA the
allocator's peak (`torch.cuda.max_memory_allocated`); on a CPU the process's peak resident set,
sampled every millisecond (freed memory the allocator keeps lowers later arms' figures: to
compare one arm across code versions, run it alone with `--arms`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

ARMS = ("one", "static", "continuous")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE


@contextmanager
def peak_memory(device: torch.device) -> Iterator[Callable[[], int]]:
    """Yields a function giving the peak bytes held above the level at entry (after exit)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield lambda: torch.cuda.max_memory_allocated(device) - base
        return
    base, peak, stop = _rss(), [0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.001):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: max(peak[0], _rss()) - base
    finally:
        stop.set()
        sampler.join()


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
    parser.add_argument("--personas", type=int, default=8,
                        help="Synthesized personas (20 sessions each, 4 of them test).")
    parser.add_argument("--arms", default=",".join(ARMS),
                        help=f"Comma-separated subset of {', '.join(ARMS)} (in that order).")
    parser.add_argument("--batch-size", type=int, default=EvalConfig().generation.batch_size)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--output", type=Path, default=Path("runs/baseline_speed.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        synthesize(args.personas, 20, 0, Path(tmp) / "raw")
        prepare_from_source(Path(tmp) / "raw", Path(tmp) / "data")
        turns = select_turns(load_split(Path(tmp) / "data", "test"), 2)[: args.turns]
    loaded = load_model(args.model)
    every_arm = {"one": ("one_at_a_time", (1, False, False)),
                 "static": (f"static_batch_{args.batch_size}_prefix_cache",
                            (args.batch_size, True, False)),
                 "continuous": (f"continuous_batch_{args.batch_size}_prefix_reuse",
                                (args.batch_size, True, True))}
    chosen = args.arms.split(",")
    if not chosen or set(chosen) - set(ARMS):
        parser.error(f"--arms: choose from {', '.join(ARMS)}")
    arms = dict(every_arm[arm] for arm in ARMS if arm in chosen)
    results, replies = {}, {}
    for name, (batch, prefix_cache, continuous) in arms.items():
        config = EvalConfig.model_validate({"model": {"name": args.model}, "generation": {
            "batch_size": batch, "max_new_tokens": args.max_new_tokens,
            "prefix_cache": prefix_cache, "continuous_batching": continuous}})
        with peak_memory(loaded.device) as peak:
            replies[name], seconds = timed_predictions(loaded, config, turns)
        mib = peak() / 2**20
        results[name] = {"batch_size": batch, "prefix_cache": prefix_cache,
                         "continuous_batching": continuous, "seconds": round(seconds, 2),
                         "turns_per_second": round(len(turns) / seconds, 3),
                         "peak_memory_mib": round(mib, 1)}
        print(f"{name:>24}: {len(turns)} turns in {seconds:.1f} s "
              f"({len(turns) / seconds:.2f} turns/s), peak memory +{mib:.0f} MiB")
    first, last = list(arms)[0], list(arms)[-1]
    speedup = results[last]["turns_per_second"] / results[first]["turns_per_second"]
    identical = all(replies[name] == replies[first] for name in arms)
    print(f"{last} / {first}: {speedup:.2f}x; identical replies: {identical}")
    write_json_atomic(args.output, {"model": args.model, "turns": len(turns),
                                    "device": str(loaded.device), "dtype": str(loaded.dtype),
                                    "threads": torch.get_num_threads(),
                                    "max_new_tokens": args.max_new_tokens, **results,
                                    "speedup": round(speedup, 2), "identical_replies": identical})


if __name__ == "__main__":
    main()
