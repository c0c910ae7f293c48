"""The Ray executor on a local 2-CPU cluster: same adapters as a local run, one shared OUT."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adaptcommand.training.export import WEIGHTS_FILE
from adaptcommand.training.ray_executor import shard
from adaptcommand.training.runner import run_training
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
    data = make_data(tmp_path)
    config = tiny_config(dropout=0.0, epochs=1)
    summary = run_training("per-user", config, data, tmp_path / "ray", executor="ray",
                           show_progress=False)
    assert summary["adapters_done"] == 3 and list(summary["adapters"]) == PERSONAS
    run_training("per-user", config, data, tmp_path / "local", show_progress=False)
    for persona in PERSONAS:
        remote = load_file(tmp_path / "ray" / persona / WEIGHTS_FILE)
        local = load_file(tmp_path / "local" / persona / WEIGHTS_FILE)
        for key, tensor in local.items():
            torch.testing.assert_close(remote[key], tensor, atol=1e-5, rtol=1e-4)
    assert not list((tmp_path / "ray").glob(".*"))
