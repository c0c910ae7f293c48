"""Study stages in parallel: how much sooner `demo --jobs 2` (two processes, each with its share
of the torch threads) finishes the same stages than one process with all of them.

    PYTHONPATH=src OMP_NUM_THREADS=2 .venv/bin/python benchmarks/stage_jobs.py \
        --data runs/study/data --users 4 --out /tmp/stage_jobs

The stages are a slice of the study's own (`configs/study.json`): for each of the first
`--users` trained users, a per-user training (the study's per-user config) and the base
model's evaluation of their test turns; none needs another, as most of the study's stages at
any moment. They run twice through `stages.run_stages`, into OUT/jobs1 and OUT/jobs2 (each
emptied first): one job in this process, then two jobs. Prints and writes OUT/stage_jobs.json:
both wall times, their ratio, and whether both runs wrote the same adapter bytes and metrics
(the thread count must not change a result).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from functools import partial
from pathlib import Path

import torch
from rich.console import Console

from adaptcommand.arms import REGISTRY
from adaptcommand.data.io import load_split
from adaptcommand.evaluation.runs import Scope, evaluate_arm
from adaptcommand.fileio import write_json_atomic
from adaptcommand.stages import Stage, run_stages
from adaptcommand.study import DEFAULT_STUDY, load_study
from adaptcommand.training.recipes import run_training


def stages(out: Path, data: Path, users: list[str], study: Path) -> list[Stage]:
    plan = load_study(study)
    config = plan.training_config(REGISTRY["per-user"])
    settings = plan.eval_config(REGISTRY["baseline"])
    work: list[Stage] = []
    for user in users:
        work.append(Stage(f"train {user}", partial(
            run_training, "per-user", config, data, out / "adapters" / user, personas=[user],
            show_progress=False)))
        work.append(Stage(f"eval {user}", partial(
            evaluate_arm, settings, Scope(data=data, personas=[user]), out / "runs" / user,
            "baseline", show_progress=False)))
    return work


def outputs(out: Path) -> dict[str, str]:
    """What a run produced that a thread count could change: adapter bytes, metrics."""
    found = {str(path.relative_to(out)): path.read_bytes().hex()
             for path in sorted(out.glob("adapters/*/*/adapter_model.safetensors"))}
    for path in sorted(out.glob("runs/*/results.json")):
        found[str(path.relative_to(out))] = json.dumps(json.loads(path.read_text())["metrics"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepared data directory")
    parser.add_argument("--users", type=int, default=4, help="trained users to take")
    parser.add_argument("--study", type=Path, default=DEFAULT_STUDY)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    users = sorted(pid for pid, dialogues in load_split(args.data, "train").items()
                   if dialogues)[:args.users]
    walls: dict[int, float] = {}
    made: dict[int, dict[str, str]] = {}
    for jobs in (1, 2):
        out = args.out / f"jobs{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        start = time.perf_counter()
        run_stages(stages(out, args.data, users, args.study), out, Console(), jobs=jobs)
        walls[jobs] = round(time.perf_counter() - start, 1)
        made[jobs] = outputs(out)
    result = {"users": users, "torch_threads": torch.get_num_threads(),
              "wall_seconds": {f"jobs{jobs}": wall for jobs, wall in walls.items()},
              "speedup": round(walls[1] / walls[2], 2), "same_outputs": made[1] == made[2],
              "outputs_compared": len(made[1])}
    write_json_atomic(args.out / "stage_jobs.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
