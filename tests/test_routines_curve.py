"""The user model in the report: learning curve, the probe answered by a mined profile, the
report's user-model sections, and `routines mine --method llm`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.data.io import RoutinesLine, load_split
from adaptcommand.errors import DataError
from adaptcommand.evaluation.probe import load_routines, run_profile_probe
from adaptcommand.evaluation.runs import Scope, resolve_config
from adaptcommand.report.build import build_report
from adaptcommand.routines.curve import (
    CURVE_JSON,
    CURVE_MD,
    CURVE_PNG,
    PUBLISHED,
    CurveSettings,
    curve_rows,
    run_curve,
)
from adaptcommand.routines.profile import MinedRoutine, UserProfile, write_profiles

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def truth(synthetic_data: Path):
    return load_routines(Scope(data=synthetic_data), "train")


def test_curve_rows_give_each_method_the_recent_sessions_of_its_personas(
        synthetic_data: Path, truth) -> None:
    train = load_split(synthetic_data, "train")
    seen: list[dict[str, int]] = []

    def oracle(dialogues):  # an LLM that knows the answer: scores must be perfect
        seen.append({pid: len(sessions) for pid, sessions in dialogues.items()})
        for pid, sessions in dialogues.items():
            assert [d.session_id for d in sessions] == [
                d.session_id for d in train[pid][-len(sessions):]]
        return {pid: [r.model_dump(exclude_none=True) for r in truth[pid]] for pid in dialogues}

    settings = CurveSettings(points=[2, None], llm_personas=2, n_resamples=50)
    rows = curve_rows(train, truth, settings, llm_predict=oracle)
    assert [(r["method"], r["personas"], r["sessions"]) for r in rows] == [
        ("miner", 3, 2), ("miner", 3, None), ("miner", 2, 2), ("miner", 2, None),
        ("llm", 2, 2), ("llm", 2, None)]
    assert seen == [{pid: 2 for pid in list(train)[:2]},
                    {pid: len(train[pid]) for pid in list(train)[:2]}]
    for row in rows[-2:]:
        assert row["metrics"]["exact_routine"] == 1.0 and row["metrics"]["jaccard"] == 1.0
    assert rows[1]["sessions_mean"] == sum(map(len, train.values())) / 3


def test_run_curve_writes_table_plot_and_json_with_published_rows(
        synthetic_data: Path, tmp_path: Path) -> None:
    settings = CurveSettings(points=[1, None], methods=["miner"], n_resamples=50)
    curve = run_curve(synthetic_data, tmp_path / "curve", settings)
    written = json.loads((tmp_path / "curve" / CURVE_JSON).read_text())
    assert written["rows"] == json.loads(json.dumps(curve["rows"]))
    assert (tmp_path / "curve" / CURVE_PNG).read_bytes().startswith(PNG_MAGIC)
    table = (tmp_path / "curve" / CURVE_MD).read_text()
    assert "| GPT-4o (published) | real data | all (50) | 0.350 |" in table
    assert "| miner, 3 personas | ours, synthetic | 1 |" in table
    assert "all train (mean" in table
    assert set(PUBLISHED) <= {line.split(" (published)")[0].strip("| ")
                              for line in table.splitlines() if "(published)" in line}


def test_profile_probe_scores_a_known_profile_exactly(synthetic_data: Path, tmp_path: Path,
                                                      truth) -> None:
    """A profile holding the true routines answers every probe right; an empty one answers
    nothing; the files are the probe's own."""
    perfect = {pid: UserProfile(persona_id=pid, sessions_used=1, routines=[
        MinedRoutine(triggers=r.triggers.model_dump(exclude_none=True),
                     actions=r.actions.model_dump(exclude_none=True), support=1, sessions=[1])
        for r in routines]) for pid, routines in truth.items()}
    write_profiles(tmp_path / "perfect.json", perfect)
    write_profiles(tmp_path / "empty.json", {pid: UserProfile(persona_id=pid, sessions_used=0)
                                             for pid in truth})
    settings = resolve_config(None, {"evaluation.bootstrap_resamples": 20})
    scope = Scope(data=synthetic_data)
    right = run_profile_probe(settings, scope, tmp_path / "right", tmp_path / "perfect.json")
    assert right["arm"] == "mined-profile"
    assert right["metrics"]["value_accuracy"] == 1.0
    assert right["metrics"]["device_f1"] == 1.0
    assert right["counts"]["routines"] == sum(map(len, truth.values()))
    none = run_profile_probe(settings, scope, tmp_path / "none", tmp_path / "empty.json")
    assert none["metrics"]["param_recall"] == 0.0
    lines = (tmp_path / "none" / "probe_predictions.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["reply"] == "no mined routine for this context"


def test_probe_cli_with_mined_profiles(synthetic_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    mined = runner.invoke(app, ["routines", "mine", "--data", str(synthetic_data),
                                "--out", str(tmp_path / "mined")])
    assert mined.exit_code == 0, mined.output
    result = runner.invoke(app, ["probe", "--data", str(synthetic_data), "--out",
                                 str(tmp_path / "probe"), "--profiles",
                                 str(tmp_path / "mined" / "profiles.json")])
    assert result.exit_code == 0, result.output
    probe = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert probe["arm"] == "mined-profile" and probe["profiles"].endswith("profiles.json")
    refused = runner.invoke(app, ["probe", "--data", str(synthetic_data), "--out",
                                  str(tmp_path / "p2"), "--profiles", "x.json",
                                  "--adapters", "y"])
    assert refused.exit_code != 0


def test_report_shows_the_user_model_sections(synthetic_data: Path, tmp_path: Path) -> None:
    from test_report import SETTINGS, write_run  # tests/ is on sys.path under pytest

    base = write_run(tmp_path / "base", "baseline")
    arm = write_run(tmp_path / "arm", "per-user")
    (base / "probe.json").write_text(json.dumps({"metrics": {"value_accuracy": 0.1}}))
    user = tmp_path / "user"
    run_curve(synthetic_data, user, CurveSettings(points=[1], methods=["miner"], n_resamples=20))
    (user / "probe.json").write_text(json.dumps({"arm": "mined-profile",
                                                 "metrics": {"value_accuracy": 0.9}}))
    build_report([base, arm], tmp_path / "report", settings=SETTINGS, user_model=[user])
    html = (tmp_path / "report" / "report.html").read_text()
    assert "User model: preference probe" in html and "User model: learning curve" in html
    assert "<td>mined-profile</td><td>0.900</td>" in html
    assert "Gemini-2.5-Flash (published)" in html
    assert (tmp_path / "report" / CURVE_PNG).read_bytes().startswith(PNG_MAGIC)
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| mined-profile | 0.900 |" in summary and "| baseline (test) | 0.100 |" in summary
    with pytest.raises(DataError, match="holds neither"):
        build_report([base, arm], tmp_path / "r2", settings=SETTINGS, user_model=[tmp_path])


def test_mine_method_llm_writes_the_routines_layout(synthetic_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "llm"
    result = runner.invoke(app, ["routines", "mine", "--data", str(synthetic_data), "--out",
                                 str(out), "--method", "llm", "--model", "tiny-random",
                                 "--max-sessions", "2"])
    assert result.exit_code == 0, result.output
    lines = (out / "routines.jsonl").read_text().splitlines()
    assert len(lines) == len(load_split(synthetic_data, "train"))
    for line in lines:
        RoutinesLine.model_validate_json(line)
    summary = json.loads((out / "mining.json").read_text())
    assert summary["method"] == "llm"
    assert {p["sessions_used"] for p in summary["llm"]["personas"].values()} == {2}
    scored = runner.invoke(app, ["routines", "score", "--pred", str(out / "routines.jsonl")])
    assert scored.exit_code == 0, scored.output
