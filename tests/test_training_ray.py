"""The Ray executor on a local 2-CPU cluster: same adapters as a local run, one shared OUT."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptcommand.training.export import WEIGHTS_FILE
from adaptcommand.training.ray_executor import shard
from adaptcommand.training.recipes import run_training
from test_training_engine import single_thread  # noqa: F401  (autouse: bitwise equality)
from test_training_runner import PERSONAS, make_data, tiny_config

ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_shards_are_balanced_round_robin() -> None:
    assert shard(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
    assert shard(["a"], 4) == [["a"]]


def test_ray_workers_train_the_same_adapters_as_a_local_run(tmp_path: Path, local_ray) -> None:
    """At the default dropout, byte for byte: an adapter's randomness is its own, whichever
    worker trains it (packed or not: on a CPU, packing changes no bit)."""
    data = make_data(tmp_path)
    config = tiny_config({"optimizer.epochs": 1, "throughput.adapters_per_step": 1})
    assert config.adapter.dropout == 0.05
    summary = run_training("per-user", config, data, tmp_path / "ray", executor="ray",
                           show_progress=False)
    assert summary["adapters_done"] == 3 and list(summary["adapters"]) == PERSONAS
    run_training("per-user", config, data, tmp_path / "local", show_progress=False)
    for persona in PERSONAS:
        remote = (tmp_path / "ray" / persona / WEIGHTS_FILE).read_bytes()
        assert remote == (tmp_path / "local" / persona / WEIGHTS_FILE).read_bytes()
    assert not list((tmp_path / "ray").glob(".*"))
