"""The training strategies as recipes: each one a short function that reads top to bottom.

Every recipe takes the same steps, the shared ones named in `training.runner`:
select the users -> plan the adapter groups (adapter name -> whose train sessions it learns
from) -> open the run (manifest, resume check) -> train (`train_run`: each adapter's examples
are built when the loop reaches it, then `engine.train_loop`, save, summary). A strategy differs
only in its groups (and, for hybrid, the adapter it starts from; for cluster, the clustering it
writes). Merged adapters for new users are not trained: their recipe is `arms.merged`
`merge_adapters`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from adaptcommand.arms.clusters import CLUSTERS_FILE, cluster_personas
from adaptcommand.data.io import load_split
from adaptcommand.errors import AdaptCommandError
from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.adapters import UNIFIED
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.runner import RunOptions, Strategy, open_run, select_personas, train_run


def per_user(config: TrainingConfig, data_dir: Path, out_dir: Path, personas: list[str] | None,
             options: RunOptions) -> dict[str, Any]:
    """One adapter per persona, learning from that persona's train sessions only."""
    users = select_personas(data_dir, personas)
    groups = {persona: [persona] for persona in users}
    plan = open_run("per-user", config, data_dir, out_dir, groups, None, options)
    return train_run(plan, options)


def unified(config: TrainingConfig, data_dir: Path, out_dir: Path, personas: list[str] | None,
            options: RunOptions) -> dict[str, Any]:
    """One adapter shared by every persona, learning from all their train sessions."""
    users = select_personas(data_dir, personas)
    plan = open_run("unified", config, data_dir, out_dir, {UNIFIED: users}, None, options)
    return train_run(plan, options)


def hybrid(config: TrainingConfig, data_dir: Path, out_dir: Path, personas: list[str] | None,
           options: RunOptions, init_from: Path | None) -> dict[str, Any]:
    """One adapter per persona, each starting from the unified adapter `init_from`."""
    if init_from is None:
        raise AdaptCommandError("--strategy hybrid needs --init-from DIR (a unified adapter)")
    users = select_personas(data_dir, personas)
    groups = {persona: [persona] for persona in users}
    plan = open_run("hybrid", config, data_dir, out_dir, groups, init_from, options)
    return train_run(plan, options)


def cluster(config: TrainingConfig, data_dir: Path, out_dir: Path, personas: list[str] | None,
            options: RunOptions) -> dict[str, Any]:
    """One adapter per behaviour cluster of personas (`arms.clusters`), learning from its
    members' train sessions; the clustering is written to `clusters.json`."""
    users = select_personas(data_dir, personas)
    clustering = cluster_personas(load_split(data_dir, "train"), users, config.cluster.k,
                                  config.seed)
    plan = open_run("cluster", config, data_dir, out_dir, clustering.groups(), None, options)
    write_json_atomic(out_dir / CLUSTERS_FILE, clustering.to_json())
    return train_run(plan, options)


# The recipes that take no starting adapter, by strategy name (hybrid takes one).
RECIPES: dict[str, Callable[..., dict[str, Any]]] = {
    "per-user": per_user, "unified": unified, "cluster": cluster}


def run_training(strategy: Strategy, config: TrainingConfig, data_dir: str | Path,
                 out_dir: str | Path, *, personas: list[str] | None = None,
                 init_from: str | Path | None = None, force: bool = False,
                 executor: Literal["local", "ray"] = "local", workers: int | None = None,
                 show_progress: bool = True) -> dict[str, Any]:
    """Train whatever adapters of the run are not finished yet with the strategy's recipe;
    return the training summary."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    options = RunOptions(force, executor, workers, show_progress)
    if strategy == "hybrid":
        return hybrid(config, data_dir, out_dir, personas, options,
                      Path(init_from) if init_from is not None else None)
    if init_from is not None:
        raise AdaptCommandError("--init-from is only used by --strategy hybrid")
    if strategy not in RECIPES:
        raise AdaptCommandError(f"unknown strategy {strategy!r}; known: "
                                f"{', '.join([*RECIPES, 'hybrid'])}")
    return RECIPES[strategy](config, data_dir, out_dir, personas, options)
