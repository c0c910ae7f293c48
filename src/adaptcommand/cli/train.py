"""`adaptcommand train`: per-user, unified, hybrid or cluster LoRA adapters (training.recipes)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adaptcommand.cli.app import app
from adaptcommand.cli.options import deprecations_shown, parse_csv, parse_overrides
from adaptcommand.config import load_config
from adaptcommand.training.config import TrainingConfig, dotted_overrides


class StrategyOption(StrEnum):
    per_user = "per-user"
    unified = "unified"
    hybrid = "hybrid"
    cluster = "cluster"


class ExecutorOption(StrEnum):
    local = "local"
    ray = "ray"


@app.command("train")
def train(
    strategy: Annotated[StrategyOption, typer.Option(
        "--strategy", help="per-user: one adapter per persona; unified: one adapter on every "
        "persona's data; hybrid: per-user adapters starting from a unified adapter; cluster: "
        "one adapter per behaviour cluster of personas (KMeans on the device settings of their "
        "routines and train sessions; K with the best silhouette in 2..8, or --set cluster.k=K; "
        "the clustering goes to OUT/clusters.json).")],
    data: Annotated[Path, typer.Option(
        "--data", help="Directory from `data prepare` (dialogs_clean.jsonl, edgesplits.json).")],
    out: Annotated[Path, typer.Option(
        "--out", help="Output directory: one PEFT adapter directory per adapter, "
        "training_summary.json, manifest.json. Rerunning resumes it.")],
    config: Annotated[Path, typer.Option(
        "--config", help="Training config, YAML or JSON, in sections (model, adapter, "
        "optimizer, early_stopping, data, prompt, cluster, throughput: training/config.py); "
        "a flat config of earlier versions still loads, with a deprecation line.")
    ] = Path("configs/lora_training.json"),
    personas: Annotated[str | None, typer.Option(
        "--personas", help="Comma-separated persona ids to train (default: all).")] = None,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", help="Unified adapter directory the hybrid adapters start from.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="Base model (overrides the config): embedded, tiny-random, a local "
        "directory or a cached hub id such as Qwen/Qwen2.5-0.5B-Instruct.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Retrain in an --out trained with another config or data.")] = False,
    executor: Annotated[ExecutorOption, typer.Option(
        "--executor", help="local: in this process; ray: shard adapters across Ray workers.")
    ] = ExecutorOption.local,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Ray workers (default: one per GPU, else one per CPU).")] = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config field, e.g. --set optimizer.epochs=3 --set "
        "early_stopping.patience=null (repeatable; values are JSON when they parse; the flat "
        "keys of earlier versions, e.g. epochs=3, still work).")] = None,
) -> None:
    """Train adapters (LoRA or prefix tuning); a rerun of the same command skips the finished
    ones."""
    with deprecations_shown(config):
        settings = dotted_overrides(parse_overrides(overrides))
        if model is not None:
            settings["model.name"] = model
        training = load_config(config, TrainingConfig, settings)
    from adaptcommand.training.recipes import run_training

    summary = run_training(
        strategy.value, training, data, out,
        personas=parse_csv(personas),
        init_from=init_from, force=force, executor=executor.value, workers=workers,
    )
    rate = summary["tokens_per_second"]
    Console().print(f"{summary['adapters_done']}/{summary['adapters_planned']} adapters in {out} "
                    f"({summary['tokens']} tokens, {rate if rate is not None else '-'} tok/s)")
    if strategy is StrategyOption.cluster:
        from adaptcommand.arms.clusters import CLUSTERS_FILE, describe_clusters

        Console().print(describe_clusters(out / CLUSTERS_FILE))

