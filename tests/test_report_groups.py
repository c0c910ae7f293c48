"""compare/report over runs evaluated on different turns: runs are grouped (test vs cold_start),
each arm is compared with its own group's baseline, and the all-arms overview puts metrics,
lift, probe scores and training cost side by side."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.errors import AdaptCommandError
from adaptcommand.report.build import build_report
from adaptcommand.report.run_results import load_groups
from test_report import ARM_PARAM_F1, PERSONAS, PNG_MAGIC, SETTINGS, markdown_rows, write_run

MIB = 2**20
COLD_BASE_F1 = [0.2] * 10
COLD_ARM_F1 = [0.3, 0.3, 0.3, 0.3, 0.1] * 2  # against 0.2: +0.1 x 4, -0.1 (twice); vs 0.5 all < 0
PER_USER_COST = {"train_seconds": 300.0, "adapter_bytes": 5 * MIB, "n_adapters": 5}
UNIFIED_COST = {"train_seconds": 60.0, "adapter_bytes": MIB, "n_adapters": 1}
PER_USER_PROBE = {"device_precision": 0.9, "device_recall": 0.95, "device_f1": 0.925,
                  "param_recall": 0.8, "value_accuracy": 0.7}


def add_files(run: Path, cost: dict | None = None, probe: dict | None = None) -> Path:
    if cost:
        (run / "training_cost.json").write_text(json.dumps(cost))
    if probe:
        (run / "probe.json").write_text(json.dumps({"metrics": probe, "counts": {}}))
    return run


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """test: baseline, per-user (trained, probed), unified (trained, probed), a memory arm
    without adapters; cold_start (other turns): its own baseline and the unified adapter."""
    cold = {"split": "cold_start", "turns": 8}
    return {
        "base": write_run(tmp_path / "base", "baseline"),
        "per_user": add_files(
            write_run(tmp_path / "per_user", "per-user", {"param_f1": ARM_PARAM_F1},
                      adapters="adapters/per-user"), PER_USER_COST, PER_USER_PROBE),
        "unified": add_files(
            write_run(tmp_path / "unified", "unified", {"param_f1": [0.4] * 10},
                      adapters="adapters/unified"), UNIFIED_COST, {"value_accuracy": 0.5}),
        "memory": write_run(tmp_path / "memory", "baseline+memory"),
        "cold_base": write_run(tmp_path / "cold_base", "baseline", {"param_f1": COLD_BASE_F1},
                               **cold),
        "cold_unified": add_files(
            write_run(tmp_path / "cold_unified", "unified", {"param_f1": COLD_ARM_F1},
                      adapters="adapters/unified", **cold), UNIFIED_COST),
    }


def mixed(runs: dict[str, Path]) -> list[Path]:
    """The runs interleaved across groups, as a user might list them."""
    return [runs[k] for k in ("base", "cold_unified", "per_user", "cold_base", "unified",
                              "memory")]


@pytest.fixture
def report(tmp_path: Path, runs: dict[str, Path]) -> Path:
    out = tmp_path / "report"
    build_report(mixed(runs), out, settings=SETTINGS, title="Grouped study")
    return out


def test_runs_are_grouped_by_the_turns_they_were_evaluated_on(runs: dict[str, Path]) -> None:
    groups = load_groups(mixed(runs))
    assert [g.name for g in groups] == ["test", "cold_start"]
    assert [g.baseline.path for g in groups] == [runs["base"], runs["cold_base"]]
    assert [[a.label for a in g.arms] for g in groups] == [
        ["per-user", "unified", "baseline+memory"], ["unified"]]


def test_each_arm_is_compared_with_its_own_group_baseline(report: Path) -> None:
    result = json.loads((report / "compare.json").read_text())
    test, cold = result["groups"]
    assert (test["name"], test["split"], cold["name"], cold["split"]) == (
        "test", "test", "cold_start", "cold_start")
    assert cold["data"]["counts"]["turns"] == 8
    cold_deltas = cold["arms"][0]["deltas"]["param_f1"]
    assert cold_deltas["per_persona"] == pytest.approx(
        dict(zip(PERSONAS, [0.1, 0.1, 0.1, 0.1, -0.1] * 2, strict=True)))
    assert cold_deltas["summary"]["mean"]["estimate"] == pytest.approx(0.06)
    per_user = test["arms"][0]["deltas"]["param_f1"]["summary"]
    assert per_user["mean"]["estimate"] == pytest.approx(0.12)  # as with a single group
    assert (test["best_arm"], cold["best_arm"]) == ("per-user", "unified")


def test_overview_has_every_arm_with_lift_probe_and_cost(report: Path) -> None:
    rows = json.loads((report / "compare.json").read_text())["overview"]
    assert [(r["group"], r["label"], r["baseline"]) for r in rows] == [
        ("test", "baseline", True), ("test", "per-user", False), ("test", "unified", False),
        ("test", "baseline+memory", False), ("cold_start", "baseline", True),
        ("cold_start", "unified", False)]
    base, per_user, unified, memory, cold_base, cold_unified = rows
    assert [r["delta"] and r["delta"]["estimate"] for r in rows] == pytest.approx(
        [None, 0.12, -0.1, 0.0, None, 0.06])
    assert [r["share_helped"] for r in rows] == pytest.approx([None, 0.6, 0.0, 0.0, None, 0.8])
    assert [r["verdict"] and r["verdict"]["passes"] for r in rows] == [
        None, True, False, False, None, True]
    assert per_user["absolute"]["param_f1"]["estimate"] == pytest.approx(0.62)
    assert cold_base["absolute"]["param_f1"]["estimate"] == pytest.approx(0.2)
    assert set(per_user["absolute"]) == {"embedding_similarity", "param_f1"}
    # Headline probe metrics by name (f1/param/value/accuracy); device precision and recall
    # stay in the full table.
    assert per_user["probe"] == {"device_f1": 0.925, "param_recall": 0.8, "value_accuracy": 0.7}
    assert unified["probe"] == {"device_f1": None, "param_recall": None, "value_accuracy": 0.5}
    assert base["probe"] is None
    zero = {"train_seconds": 0.0, "adapter_bytes": 0, "n_adapters": 0}
    assert (base["cost"], memory["cost"], cold_base["cost"]) == (zero, zero, zero)
    assert per_user["cost"] == PER_USER_COST and cold_unified["cost"] == UNIFIED_COST


def test_adapters_without_a_cost_file_have_unknown_cost(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    (runs["cold_unified"] / "training_cost.json").unlink()
    out = tmp_path / "out"
    build_report(mixed(runs), out, settings=SETTINGS)
    assert json.loads((out / "compare.json").read_text())["overview"][-1]["cost"] is None
    table = markdown_rows((out / "summary.md").read_text(), "## All arms")
    assert table[-1][-3:] == ["n/a", "n/a", "n/a"]


def test_summary_markdown_overview_and_one_table_per_group(report: Path) -> None:
    text = (report / "summary.md").read_text()
    overview = markdown_rows(text, "## All arms")
    assert [row[:2] for row in overview] == [
        ["test", "baseline"], ["test", "per-user"], ["test", "unified"],
        ["test", "baseline+memory"], ["cold_start", "baseline"], ["cold_start", "unified"]]
    per_user, cold_unified = overview[1], overview[5]
    assert per_user[4].startswith("+0.120 [")
    assert per_user[5:7] == ["6/10 (60%)", "PASS (60% helped)"]
    assert per_user[7:] == ["0.925", "0.800", "0.700", "300.0", "5.00", "5"]  # probe, cost
    assert cold_unified[4].startswith("+0.060 [") and cold_unified[5] == "8/10 (80%)"
    assert overview[0][4:] == ["", "", "baseline", "n/a", "n/a", "n/a", "0.0", "0.00", "0"]
    assert [r[0] for r in markdown_rows(text, "## Metrics: test")] == [
        "baseline", "per-user", "unified", "baseline+memory"]
    assert [r[0] for r in markdown_rows(text, "## Metrics: cold_start")] == ["baseline", "unified"]


def test_html_has_overview_cost_plot_and_sections_per_group(report: Path) -> None:
    html = (report / "report.html").read_text(encoding="utf-8")
    assert html.index("<h2>All arms</h2>") < html.index("<h2>Summary: test</h2>")
    assert "<h2>Summary: cold_start</h2>" in html and "<h2>Verdict per arm: cold_start" in html
    assert "<th>probe value_accuracy</th>" in html and "<td>300.0</td>" in html
    assert "Cost vs benefit per arm (cost_benefit.png)" in html
    assert html.count('src="data:image/png;base64,') == 1 + 2 * 4
    png = (report / "cost_benefit.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert html.count(base64.b64encode(png).decode("ascii")) == 1
    height, width, _ = matplotlib.image.imread(report / "cost_benefit.png").shape
    assert height > 300 and width > 500
    for group in ("test", "cold_start"):
        assert (report / f"{group}-lift_distribution.png").read_bytes().startswith(PNG_MAGIC)
        assert f"({group}-delta_heatmap.png)" in html


def test_group_without_a_baseline_is_refused_by_name(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    without = [p for p in mixed(runs) if p != runs["cold_base"]]
    with pytest.raises(AdaptCommandError) as caught:
        build_report(without, out, settings=SETTINGS)
    message = str(caught.value)
    assert "no baseline for group 'cold_start'" in message
    assert f"{runs['cold_unified']} (unified)" in message and "--baseline" in message
    assert not out.exists()


def test_baseline_option_names_one_run_per_group(runs: dict[str, Path], tmp_path: Path) -> None:
    groups = load_groups(mixed(runs), [runs["unified"], runs["cold_base"]])
    assert [g.baseline.label for g in groups] == ["unified", "baseline"]
    assert [a.label for a in groups[0].arms] == ["baseline", "per-user", "baseline+memory"]
    with pytest.raises(AdaptCommandError, match="several baselines for group 'test'"):
        load_groups(mixed(runs), [runs["unified"], runs["base"]])


def test_cli_takes_a_baseline_per_group(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, [
        "compare", *map(str, mixed(runs)), "--out", str(out),
        "--baseline", str(runs["base"]), "--baseline", str(runs["cold_base"])])
    assert result.exit_code == 0, result.output
    assert "cold_start: unified: PASS (80% helped)" in result.output
    groups = json.loads((out / "compare.json").read_text())["groups"]
    assert [g["baseline"]["path"] for g in groups] == [str(runs["base"]), str(runs["cold_base"])]


def test_a_report_into_the_same_out_drops_figures_it_no_longer_writes(
        runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "again"
    build_report([runs["base"], runs["per_user"]], out, settings=SETTINGS)
    assert (out / "arm_metrics.png").is_file()  # one group: unprefixed names
    (out / "notes.png").write_bytes(b"mine")  # not a report figure: kept
    build_report(mixed(runs), out, settings=SETTINGS)
    names = {p.name for p in out.glob("*.png")}
    assert "arm_metrics.png" not in names and "notes.png" in names
    assert {"test-arm_metrics.png", "cold_start-arm_metrics.png", "cost_benefit.png"} <= names
