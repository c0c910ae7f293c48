"""Speed of the routine miner on every user, against reading and extracting alone.

    PYTHONPATH=src .venv/bin/python benchmarks/mine_speed.py [--data DIR] [--output results.json]

Without --data, synthesizes the default corpus (200 users x 50 sessions, seed 0) and prepares it
in a temporary directory first (not timed). Timed in CPU seconds of this one process (one core,
pure Python), so other jobs on the machine do not distort it:
- reference: load the train split and read every session's end state (the action extractor on
  every message), the part any consumer of the sessions pays;
- mining: steps 2-4 of the miner on those end states (candidates, values, greedy choice);
- ratio: mining / reference.
Also prints the routine-reconstruction scores of the mined routines against the truth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from adaptcommand.data.io import load_split
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.synth import synthesize
from adaptcommand.evaluation.probe import load_routines
from adaptcommand.evaluation.runs import Scope
from adaptcommand.fileio import write_json_atomic
from adaptcommand.routines.mining import MiningSettings, mine_observed, observe
from adaptcommand.routines.scoring import score_routines


def measure(data: Path, settings: MiningSettings) -> dict[str, object]:
    start = time.process_time()
    train = load_split(data, "train")
    observed = {pid: [observe(d, i) for i, d in enumerate(ds)] for pid, ds in train.items()}
    read = time.process_time() - start
    start = time.process_time()
    profiles = {pid: mine_observed(pid, sessions, settings) for pid, sessions in observed.items()}
    mined = time.process_time() - start
    pred = {pid: [r.to_routine() for r in p.routines] for pid, p in profiles.items()}
    scores = score_routines(pred, load_routines(Scope(data=data)), n_resamples=200)
    return {
        "personas": len(train), "sessions": sum(map(len, train.values())),
        "reference_cpu_s": round(read, 2), "mining_cpu_s": round(mined, 2),
        "ratio": round(mined / read, 3), "metrics": scores["metrics"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="A `data prepare` directory (default: synthesize 200 x 50).")
    parser.add_argument("--output", type=Path, default=None, help="Optional JSON results file.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            synthesize(200, 50, 0, Path(tmp) / "raw")
            prepare_from_source(Path(tmp) / "raw", Path(tmp) / "data")
            data = Path(tmp) / "data"
        result = measure(data, MiningSettings())
    print(f"{result['personas']} personas, {result['sessions']} train sessions: read + extract "
          f"{result['reference_cpu_s']} CPU s, mining {result['mining_cpu_s']} CPU s "
          f"(ratio {result['ratio']})")
    print("| " + " | ".join(result["metrics"]) + " |")  # type: ignore[arg-type]
    print("| " + " | ".join(f"{v:.3f}" for v in result["metrics"].values()) + " |")  # type: ignore[union-attr]
    if args.output is not None:
        write_json_atomic(args.output, result)


if __name__ == "__main__":
    main()
