"""benchmarks/distill_curve.py on tiny-random: every grid point around the distilled arm is
trained, evaluated on val, probed and recorded with its factor values and costs, a second run
trains nothing, and the figure is a PNG; a grid the hybrid arm cannot train is refused."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from adaptcommand import demo as demo_module
from adaptcommand.training.recipes import run_training
from test_demo_study import tiny_study
from test_training_engine import single_thread  # noqa: F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("distill_curve",
                                                  ROOT / "benchmarks" / "distill_curve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_grid_points_are_recorded_and_a_rerun_trains_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_benchmark()
    plan = tiny_study()
    data = demo_module._prepare_data(tmp_path / "study", plan)
    out = tmp_path / "curve"
    values = {"examples": [0, 1], "epochs": [1, 2], "lr": [0.01], "rank": [2],
              "targets": ["qv", "all"]}

    curve = bench.run_curve(plan, data, out, values, users=1)

    # The base is the tiny study's distilled arm; one factor moves at a time around it.
    lr = plan.training_config(bench.REGISTRY["distilled-per-user"]).optimizer.learning_rate
    assert curve["base_values"] == {"examples": 1, "epochs": 1, "lr": lr, "rank": 2,
                                    "targets": "qv"}
    rows = {row["point"]: row for row in curve["points"]}
    assert set(rows) == {f"ex1_ep1_lr{lr:g}_r2_qv", f"ex0_ep1_lr{lr:g}_r2_qv",
                         f"ex1_ep2_lr{lr:g}_r2_qv", "ex1_ep1_lr0.01_r2_qv",
                         f"ex1_ep1_lr{lr:g}_r2_all"}
    assert len(curve["personas"]) == 1 and curve["split"] == "val"
    for name, row in rows.items():
        assert name == (f"ex{row['examples']}_ep{row['epochs']}_lr{row['lr']:g}_r{row['rank']}"
                        f"_{row['targets']}")
        assert row["n_adapters"] == 1 and row["train_seconds"] > 0
        assert 0 < row["implicit_turns"] <= row["turns"]
        assert all(row[m] is None or 0.0 <= row[m] <= 1.0
                   for m in (*bench.METRICS, "probe_param_recall"))
        results = json.loads((out / name / "run" / "results.json").read_text())
        assert results["personas"] == curve["personas"]
        assert results["config"]["evaluation"]["split"] == "val"
        assert "profile" not in results["config"]["prompt"]  # no profile line at evaluation
        assert json.loads((out / name / "probe" / "probe.json").read_text())["personas"] == \
            curve["personas"]
    base = rows[f"ex1_ep1_lr{lr:g}_r2_qv"]
    # The factors reach training: distilled examples add train examples, every linear layer
    # makes a larger adapter than q/v, and the epochs and learning rate are the manifest's.
    assert rows[f"ex0_ep1_lr{lr:g}_r2_qv"]["train_examples"] < base["train_examples"]
    assert rows[f"ex1_ep1_lr{lr:g}_r2_all"]["adapter_mib"] > 2 * base["adapter_mib"]
    manifest = json.loads((out / f"ex1_ep2_lr{lr:g}_r2_qv" / "adapters" / "manifest.json")
                          .read_text())
    assert manifest["config"]["optimizer"]["epochs"] == 2
    manifest = json.loads((out / "ex1_ep1_lr0.01_r2_qv" / "adapters" / "manifest.json")
                          .read_text())
    assert manifest["config"]["optimizer"]["learning_rate"] == 0.01
    assert json.loads((out / "curve.json").read_text()) == curve
    assert (out / "distill_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished point was run again")

    monkeypatch.setattr(bench, "run_training", refuse)
    monkeypatch.setattr(bench, "evaluate_arm", refuse)
    monkeypatch.setattr(bench, "run_probe", refuse)
    assert bench.run_curve(plan, data, out, values, users=1) == curve

    # A point whose probe is missing is probed again, nothing else; the output dir keeps
    # the arm and split its points were run with.
    probe = out / f"ex0_ep1_lr{lr:g}_r2_qv" / "probe"
    kept = (probe / "probe.json").read_text()
    shutil.rmtree(probe)
    monkeypatch.undo()
    monkeypatch.setattr(bench, "run_training", refuse)
    monkeypatch.setattr(bench, "evaluate_arm", refuse)
    assert bench.run_curve(plan, data, out, values, users=1) == curve
    assert (probe / "probe.json").read_text() == kept
    with pytest.raises(SystemExit, match="use another --out"):
        bench.run_curve(plan, data, out, values, users=1, setup=bench.Setup(split="test"))


def test_hybrid_points_start_from_the_unified_adapter(tmp_path: Path) -> None:
    bench = load_benchmark()
    plan = tiny_study()
    data = demo_module._prepare_data(tmp_path / "study", plan)
    config = plan.training_config(bench.REGISTRY["unified"])
    # a point's alpha is 2r (Point.overrides): the adapter it starts from must have it too
    run_training("unified", config.updated({"adapter.alpha": 2.0 * config.adapter.r}), data,
                 tmp_path / "unified", show_progress=False)
    start = tmp_path / "unified" / "unified"
    values = {"examples": [], "epochs": [], "lr": [], "rank": [], "targets": []}

    curve = bench.run_curve(plan, data, tmp_path / "curve", values, users=1,
                            setup=bench.Setup("distilled-hybrid", start))

    assert curve["arm"] == "distilled-hybrid" and curve["init_from"] == str(start)
    (point,) = curve["points"]
    manifest = json.loads((tmp_path / "curve" / point["point"] / "adapters" /
                           "manifest.json").read_text())
    assert manifest["strategy"] == "hybrid" and manifest["init_from"] == str(start)


def test_product_grid_and_unknown_targets() -> None:
    bench = load_benchmark()
    base = bench.Point(6, 1, 1e-3, 8, "qv")
    values = {"examples": [0, 6], "epochs": [1, 3], "lr": [], "rank": [8], "targets": ["qv"]}
    assert len(bench.grid(base, values, product=False)) == 3
    assert len(bench.grid(base, values, product=True)) == 4  # an empty factor: the base's value
    overrides = bench.Point(6, 1, 3e-3, 32, "all").overrides()
    assert overrides["adapter.r"] == 32 and overrides["adapter.alpha"] == 64
    assert overrides["optimizer.learning_rate"] == 3e-3
    assert len(overrides["adapter.target_modules"]) == 7
    with pytest.raises(SystemExit):
        bench.main(["--data", "d", "--out", "o", "--targets", "qkv"])


def test_hybrid_needs_its_start_and_keeps_its_rank_and_targets() -> None:
    bench = load_benchmark()
    base = bench.Point(8, 1, 3e-3, 8, "qv")
    values = {"examples": [2, 8], "epochs": [1], "lr": [], "rank": [8], "targets": ["qv"]}
    hybrid = bench.Setup("distilled-hybrid", Path("unified"))
    hybrid.check_arm()
    hybrid.check_grid(base, values)
    for setup, message in ((bench.Setup("distilled-hybrid"), "is needed"),
                           (bench.Setup("distilled-per-user", Path("unified")), "only"),
                           (bench.Setup("profile+unified"), "not one of")):
        with pytest.raises(SystemExit, match=message):
            setup.check_arm()
    for factor, value in (("rank", [8, 32]), ("targets", ["all"])):
        with pytest.raises(SystemExit, match="rank and target modules"):
            hybrid.check_grid(base, {**values, factor: value})
    bench.Setup("distilled-per-user").check_grid(base, {**values, "rank": [8, 32]})
