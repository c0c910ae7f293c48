"""Scale-out: shard a run's adapters across Ray workers, each running the engine on its shard.

The executor knows nothing of runs: it gets a picklable `train(names)` (the runner passes its
`train_shard` bound to the run's plan). Workers write adapter directories straight into the
shared output directory (each one atomic, with its record inside), so the driver only watches
the disk to keep the summary and progress current; a killed cluster resumes like a killed local
run. One worker per GPU when the cluster has GPUs, else one per CPU.
"""

from __future__ import annotations

from collections.abc import Callable

from adaptcommand.errors import AdaptCommandError

TrainNames = Callable[[list[str]], None]

POLL_SECONDS = 2.0


def shard(names: list[str], workers: int) -> list[list[str]]:
    """Round-robin split, so shards differ in size by at most one adapter."""
    return [names[i::workers] for i in range(min(workers, len(names)))]


def _train_shard_task(train: TrainNames, names: list[str]) -> list[str]:
    """Runs inside a worker: use only the CPUs Ray gave it, so workers do not oversubscribe."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    train(names)
    return names


def run_on_ray(train: TrainNames, names: list[str], workers: int | None,
               on_poll: Callable[[], None]) -> None:
    """Run `train` over shards of `names` on the current Ray cluster (a local one is started
    when none is running)."""
    try:
        import ray
    except ImportError:
        raise AdaptCommandError("--executor ray needs Ray: pip install 'adaptcommand[ray]'"
                                ) from None
    if not names:
        return
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    count = workers or gpus or max(1, int(resources.get("CPU", 1)))
    task = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0)(_train_shard_task)
    pending = [task.remote(train, part) for part in shard(names, count)]
    refs = list(pending)
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_SECONDS)
        on_poll()
    ray.get(refs)  # re-raises the first worker failure
