"""compare/report: deltas and sign counts on a hand-computed case, the verdict, refusals of
incomparable runs, and the files (HTML, Markdown, PNG, JSON) written from runs built in code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.report.build import build_report
from adaptcommand.report.compare import DEFAULT_METRICS, CompareSettings, compare_runs
from adaptcommand.report.examples import fixed_turns
from adaptcommand.report.plots import arm_colors
from adaptcommand.report.run_results import PredictionRecord, load_groups, load_predictions

PERSONAS = [f"persona_{i:03d}" for i in range(10)]  # MIN_USERS: enough to decide
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("lift_distribution.png", "baseline_vs_adapted.png", "delta_heatmap.png",
           "arm_metrics.png", "cost_benefit.png")
SETTINGS = CompareSettings(n_resamples=200)


def write_run(
    directory: Path,
    arm: str,
    overrides: dict[str, list[float | None]] | None = None,
    *,
    fingerprint: str = "f" * 64,
    turns: int = 10,
    predictions: list[dict[str, Any]] | None = None,
    split: str = "test",
    adapters: str | None = None,
    personas: list[str] = PERSONAS,
) -> Path:
    """A run directory as `baseline`/`eval` writes it; every metric is 0.5 for every persona
    unless `overrides` gives its per-persona values (in `personas` order). Its intervals carry
    no `n_users`, as results.json did before they had one."""
    columns = {m: [0.5] * len(personas) for m in DEFAULT_METRICS} | (overrides or {})
    per_persona = {p: {"n_turns": 2} | {m: v[i] for m, v in columns.items()}
                   for i, p in enumerate(personas)}
    means = {m: None if None in v else sum(v) / len(v) for m, v in columns.items()}
    results = {
        "config": {"model": {"name": "tiny-random"}, "generation": {"do_sample": False},
                   "evaluation": {"split": split}, "prompt": {"max_context_messages": 5}},
        "arm": arm, "data": "data/dialogs.jsonl", "data_fingerprint": fingerprint,
        "counts": {"turns": turns, "sessions": 5, "personas": len(personas)},
        "metrics": {"n_turns": turns, **means},
        "confidence_intervals": {
            m: {"estimate": v, "low": v and v - 0.05, "high": v and v + 0.05}
            for m, v in means.items()
        },
        "actions": {},
        "per_persona": per_persona,
        "adapters": adapters,
    }
    directory.mkdir(parents=True)
    (directory / "results.json").write_text(json.dumps(results), encoding="utf-8")
    lines = [json.dumps(r) for r in predictions or []]
    (directory / "predictions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def prediction(persona: str, prediction_actions: dict[str, Any], text: str) -> dict[str, Any]:
    return {"persona_id": persona, "session_id": 1, "turn_index": 3, "prediction": text,
            "reference": "Setting the AC to 21 degrees.", "prediction_actions": prediction_actions,
            "reference_actions": {"ac": {"temperature": 21}}}


ARM_PARAM_F1 = [0.7, 0.6, 0.5, 0.4, 0.9] * 2  # against 0.5: +0.2, +0.1, 0, -0.1, +0.4, twice


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    """A baseline and two arms: `per-user` passes, `unified` hurts most personas."""
    base = write_run(tmp_path / "base", "baseline", predictions=[
        prediction("persona_001", {}, "Sure, what temperature?")])
    per_user = write_run(tmp_path / "per_user", "per-user", {"param_f1": ARM_PARAM_F1},
                         predictions=[prediction("persona_001", {"ac": {"temperature": 21}},
                                                 "Setting the AC to 21 degrees now.")])
    unified = write_run(tmp_path / "unified", "unified",
                        {"param_f1": [0.4, 0.4, 0.6, 0.4, 0.4] * 2})
    return [base, per_user, unified]


def test_deltas_and_sign_counts_match_hand_computed_values(runs: list[Path]) -> None:
    comparison = compare_runs(load_groups(runs)[0], SETTINGS)
    per_user = comparison.arms[0].metrics["param_f1"]
    assert per_user.deltas == pytest.approx(
        dict(zip(PERSONAS, [0.2, 0.1, 0.0, -0.1, 0.4] * 2, strict=True)))
    summary = per_user.summary
    assert summary.mean.estimate == pytest.approx(0.12)
    assert summary.mean.low <= 0.12 <= summary.mean.high
    assert (summary.sign_test.helped, summary.sign_test.hurt, summary.sign_test.tied) == (6, 2, 2)
    # 2 * (C(8,0) + C(8,1) + C(8,2)) / 2^8
    assert summary.sign_test.p_value == pytest.approx(74 / 256)
    assert (summary.mean.n_users, summary.too_few_users) == (10, False)
    assert summary.share_helped == pytest.approx(0.6)
    assert [p for p, _ in summary.top[:2]] == ["persona_004", "persona_009"]
    assert summary.bottom[0] == ("persona_003", pytest.approx(-0.1))
    assert comparison.best.run.label == "per-user"


def _verdict(tmp_path: Path, overrides: dict[str, list[float | None]],
             base_overrides: dict[str, list[float | None]] | None = None):
    base = write_run(tmp_path / "b", "baseline", base_overrides)
    arm = write_run(tmp_path / "a", "per-user", {"param_f1": ARM_PARAM_F1} | overrides)
    return compare_runs(load_groups([base, arm])[0], SETTINGS).arms[0].verdict


def test_arm_passes_with_60_percent_helped_and_no_guard_regression(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, {"embedding_similarity": [0.51, 0.49, 0.5, 0.5, 0.5] * 2})
    assert verdict.passes
    assert verdict.share_helped == pytest.approx(0.6)
    assert verdict.regressions == [] and verdict.unmeasured == []


def test_arm_fails_when_too_few_personas_are_helped(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, {"param_f1": [0.7, 0.6, 0.5, 0.4, 0.4] * 2})
    assert not verdict.passes
    assert verdict.share_helped == pytest.approx(0.4)


def test_arm_fails_when_a_guard_metric_regresses(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, {"device_precision": [0.4, 0.3, 0.45, 0.35, 0.4] * 2})
    assert not verdict.passes
    assert verdict.regressions == ["device_precision"]


def test_guard_without_paired_personas_is_unmeasured_not_failed(tmp_path: Path) -> None:
    verdict = _verdict(tmp_path, {}, base_overrides={"device_precision": [None] * 10})
    assert verdict.passes
    assert verdict.unmeasured == ["device_precision"]


@pytest.mark.parametrize(("kwargs", "group"), [
    ({"fingerprint": "0" * 64}, "test [00000000, 10 turns]"),
    ({"turns": 11}, "test [ffffffff, 11 turns]"),
])
def test_runs_on_other_data_or_turns_need_their_own_baseline(
    tmp_path: Path, kwargs: dict, group: str
) -> None:
    base = write_run(tmp_path / "base", "baseline")
    other = write_run(tmp_path / "other", "per-user", **kwargs)
    with pytest.raises(AdaptCommandError, match="no baseline") as caught:
        load_groups([base, other])
    assert f"group '{group}'" in str(caught.value)
    assert f"{other} (per-user)" in str(caught.value)


def test_invalid_results_are_located_by_file_and_field(tmp_path: Path) -> None:
    base = write_run(tmp_path / "base", "baseline")
    other = write_run(tmp_path / "other", "per-user")
    results = json.loads((other / "results.json").read_text())
    del results["counts"]["turns"]
    (other / "results.json").write_text(json.dumps(results))
    with pytest.raises(DataError, match=r"results\.json: field 'counts\.turns'"):
        load_groups([base, other])


def test_unknown_metric_and_missing_arm_are_refused(runs: list[Path]) -> None:
    with pytest.raises(AdaptCommandError, match="unknown metric"):
        compare_runs(load_groups(runs)[0], CompareSettings(metrics=["bleu"]))
    with pytest.raises(AdaptCommandError, match="nothing to compare"):
        load_groups(runs[:1])


def test_explicit_baseline_and_repeated_arm_names(tmp_path: Path, runs: list[Path]) -> None:
    twin = write_run(tmp_path / "per_user_r16", "per-user")
    (group,) = load_groups([runs[1], twin, runs[0]], [runs[0]])
    assert group.baseline.label == "baseline"
    assert [a.label for a in group.arms] == ["per-user [per_user]", "per-user [per_user_r16]"]
    (group,) = load_groups([runs[0], runs[2]], [runs[2]])  # --baseline beats the arm name
    assert (group.baseline.label, [a.label for a in group.arms]) == ("unified", ["baseline"])


@pytest.fixture
def report(tmp_path: Path, runs: list[Path]) -> Path:
    (runs[1] / "training_cost.json").write_text(json.dumps(
        {"train_seconds": 120.5, "adapter_bytes": 3 * 2**20, "n_adapters": 5}))
    (runs[1] / "probe.json").write_text(json.dumps({"metrics": {"probe_accuracy": 0.75}}))
    out = tmp_path / "report"
    build_report(runs, out, settings=SETTINGS, title="Test study")
    return out


def test_html_is_self_contained_with_every_section(report: Path) -> None:
    html = (report / "report.html").read_text(encoding="utf-8")
    for heading in ("Test study", "All arms", "Data and configuration", "Summary", "Figures",
                    "Verdict per arm", "Bar of success", "Who benefits most and least",
                    "Example turns", "Training cost", "Preference probe"):
        assert heading in html
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert "Setting the AC to 21 degrees now." in html  # the turn per-user fixed
    assert "probe_accuracy" in html and "120.500" in html and "3.00" in html


def markdown_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under `heading`, as lists of cells."""
    lines = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    table = [line for line in lines if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in table[1:]]


def test_summary_markdown_has_a_row_per_arm_with_verdicts(report: Path) -> None:
    rows = [" | ".join(row) for row in markdown_rows((report / "summary.md").read_text(),
                                                      "## Metrics")]
    assert [row.split(" | ")[0] for row in rows] == ["baseline", "per-user", "unified"]
    assert "PASS (60% helped)" in rows[1]
    assert "FAIL (20% helped)" in rows[2]
    assert "Δ +0.120 [" in rows[1]


def test_figures_are_valid_pngs(report: Path) -> None:
    for name in FIGURES:
        data = (report / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        height, width, _ = matplotlib.image.imread(report / name).shape
        assert height > 300 and width > 300


def test_compare_json_holds_the_numbers_and_is_deterministic(
    report: Path, runs: list[Path], tmp_path: Path
) -> None:
    result = json.loads((report / "compare.json").read_text())
    (group,) = result["groups"]
    assert group["name"] == "test"
    per_user = group["arms"][0]
    assert per_user["verdict"]["passes"] is True
    assert per_user["deltas"]["param_f1"]["summary"]["sign_test"]["helped"] == 6
    assert per_user["training_cost"]["n_adapters"] == 5
    assert group["best_arm"] == "per-user"
    again = tmp_path / "again"
    build_report(runs, again, settings=SETTINGS, title="Test study")
    for name in ("compare.json", "report.html"):
        assert (again / name).read_bytes() == (report / name).read_bytes()


def test_cli_compare_and_report_are_the_same_command(runs: list[Path], tmp_path: Path) -> None:
    runner = CliRunner()
    outputs = []
    for command in ("compare", "report"):
        out = tmp_path / command
        result = runner.invoke(app, [command, *map(str, runs), "--out", str(out),
                                     "--metrics", "param_f1,rougeL", "--min-helped", "0.5"])
        assert result.exit_code == 0, result.output
        assert "report.html" in result.output
        outputs.append(json.loads((out / "compare.json").read_text()))
    assert outputs[0] == outputs[1]
    assert outputs[0]["settings"]["metrics"] == ["param_f1", "rougeL"]
    assert outputs[0]["settings"]["min_share_helped"] == 0.5


def test_bad_prediction_line_is_located(tmp_path: Path) -> None:
    bad = prediction("persona_001", {}, "ok") | {"turn_index": "x"}
    run = write_run(tmp_path / "run", "baseline",
                    predictions=[prediction("persona_000", {}, "ok"), bad])
    with pytest.raises(DataError) as caught:
        load_predictions(run)
    assert (caught.value.line, caught.value.field) == (2, "turn_index")


def test_every_arm_of_a_figure_gets_its_own_colour_up_to_twenty() -> None:
    assert len(set(arm_colors(12))) == 12 and len(set(arm_colors(20))) == 20
    assert arm_colors(4) == arm_colors(10)[:4]  # small reports keep tab10's colours


def test_fixed_turns_exclude_turns_the_baseline_got_and_rotate_personas() -> None:
    ac = {"ac": {"temperature": 21}}

    def record(persona: str, turn: int, actions: dict) -> PredictionRecord:
        return PredictionRecord.model_validate(
            prediction(persona, actions, "text") | {"turn_index": turn})

    base = [record("a", 1, {}), record("a", 3, {}), record("b", 1, {}), record("b", 3, ac)]
    arm = [record(r.persona_id, r.turn_index, ac) for r in base]
    turns = fixed_turns({r.key: r for r in base}, {r.key: r for r in arm})
    assert [t.key for t in turns] == [("a", 1, 1), ("b", 1, 1), ("a", 1, 3)]


def test_below_ten_users_no_interval_and_no_verdict_anywhere(tmp_path: Path) -> None:
    """Four users, as in the demo: CLI, summary.md, report.html and compare.json all give the
    estimates and counts, and "too few users to decide: 4" where intervals and verdicts were."""
    four = PERSONAS[:4]
    base = write_run(tmp_path / "base", "baseline", personas=four)
    arm = write_run(tmp_path / "arm", "per-user", {"param_f1": [0.9, 0.8, 0.7, 0.6]},
                    personas=four)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["compare", str(base), str(arm), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "per-user: too few users to decide: 4" in result.output
    assert "PASS" not in result.output and "FAIL" not in result.output

    data = json.loads((out / "compare.json").read_text())
    (group,) = data["groups"]
    verdict = group["arms"][0]["verdict"]
    assert (verdict["passes"], verdict["too_few_users"], verdict["n_users"]) == (None, True, 4)
    summary = group["arms"][0]["deltas"]["param_f1"]["summary"]
    assert summary["mean"]["estimate"] == pytest.approx(0.25)
    assert (summary["mean"]["low"], summary["mean"]["high"]) == (None, None)
    assert (summary["too_few_users"], summary["mean"]["n_users"]) == (True, 4)
    assert summary["sign_test"]["p_value"] is None and summary["sign_test"]["helped"] == 4
    absolute = group["baseline"]["absolute"]["param_f1"]
    assert absolute == {"estimate": 0.5, "low": None, "high": None, "n_users": 4,
                        "too_few_users": True}
    row = data["overview"][1]
    assert row["delta"]["low"] is None and row["verdict"]["passes"] is None

    text = (out / "summary.md").read_text()
    overview = markdown_rows(text, "## All arms")[1]
    assert overview[2] == "0.500 (too few users to decide: 4)"
    assert overview[4] == "+0.250 (too few users to decide: 4)"
    assert overview[5:7] == ["4/4 (100%)", "too few users to decide: 4"]
    metrics = " | ".join(markdown_rows(text, "## Metrics")[1])
    assert "| 4/4 | too few users to decide: 4" in metrics and "[" not in metrics
    assert "PASS" not in text and "FAIL" not in text

    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<span class="undecided">too few users to decide: 4</span>' in html
    assert "PASS" not in html and "FAIL" not in html and " [0." not in html


def test_intervals_name_their_users(report: Path) -> None:
    data = json.loads((report / "compare.json").read_text())
    absolute = data["groups"][0]["baseline"]["absolute"]["param_f1"]
    assert (absolute["low"], absolute["n_users"], absolute["too_few_users"]) == (
        pytest.approx(0.45), 10, False)
    text = (report / "summary.md").read_text()
    assert markdown_rows(text, "## All arms")[1][4].endswith("(10 users)")
    assert "0.500 [0.450, 0.550] (10 users)" in text
