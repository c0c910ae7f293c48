"""`adaptcommand data prepare` end to end, through the same entry point users run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from adaptcommand.cli import run_app
from adaptcommand.data.prepare import OUTPUT_FILES


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def run(*args: object) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["adaptcommand", *map(str, args)])
        try:
            run_app()
            code = 0
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _read_bytes(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in OUTPUT_FILES}


def test_prepare_writes_clean_dialogues_splits_stats_and_report(
    tmp_path, source_users, write_source_layout, cli
) -> None:
    users = source_users(n_users=2, n_sessions=50)
    users[1]["sessions"][4]["messages"] = [{"role": "user", "text": "hello?"}]
    users[1]["sessions"][5]["messages"][1]["text"] = " \t "
    source = write_source_layout(tmp_path / "src", users)
    code, out, _ = cli("data", "prepare", "--source", source, "--out", tmp_path / "out")
    assert code == 0
    assert "100 read, 98 kept" in out and "validation: passed" in out

    lines = (tmp_path / "out" / "dialogs_clean.jsonl").read_text().splitlines()
    assert len(lines) == 98
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert list(first) == ["persona_id", "session_id", "character", "routines", "meta", "messages"]
    assert first["routines"] == [{"triggers": {"time_of_day": "evening"},
                                  "actions": {"lights": {"brightness": 40, "color": "warm"}}}]
    assert first["messages"][0] == {"role": "user", "text": "Set the lights to 0 please"}
    assert second["applied_routines"] == [0]
    assert [json.loads(line)["session_id"] for line in lines[50:56]] == [0, 1, 2, 3, 6, 7]

    splits = json.loads((tmp_path / "out" / "edgesplits.json").read_text())
    assert {pid: [len(v) for v in e.values()] for pid, e in splits.items()} == {
        "persona_000": [30, 10, 10], "persona_001": [29, 9, 10],
    }
    report = json.loads((tmp_path / "out" / "validation_report.json").read_text())
    assert report["passed"] is True
    assert report["cleaning"]["dropped_by_reason"] == {
        "too_few_messages": 1, "empty_text": 1, "no_assistant_turn": 0}
    assert [c["name"] for c in report["checks"]] == [
        "indices_valid", "no_overlap", "coverage", "balance", "temporal_order"]
    stats = json.loads((tmp_path / "out" / "split_stats.json").read_text())
    assert (stats["train"]["sessions"], stats["val"]["sessions"], stats["test"]["sessions"]) == (
        59, 19, 20)
    assert stats["test"]["assistant_turns"] == 20


def test_same_input_gives_byte_identical_output_and_reprepare_is_stable(
    tmp_path, source_users, write_source_layout, cli
) -> None:
    source = write_source_layout(tmp_path / "src", source_users(n_users=3, n_sessions=20))
    for name in ("a", "b"):
        assert cli("data", "prepare", "--source", source, "--out", tmp_path / name)[0] == 0
    assert _read_bytes(tmp_path / "a") == _read_bytes(tmp_path / "b")
    again = tmp_path / "again"
    code, _, _ = cli("data", "prepare", "--dialogues", tmp_path / "a" / "dialogs_clean.jsonl",
                     "--out", again)
    assert code == 0
    for name in ("dialogs_clean.jsonl", "edgesplits.json"):
        assert (again / name).read_bytes() == (tmp_path / "a" / name).read_bytes()


def test_split_options_change_the_cut(tmp_path, source_users, write_source_layout, cli) -> None:
    source = write_source_layout(tmp_path / "src", source_users(n_users=1, n_sessions=50))
    code, _, _ = cli("data", "prepare", "--source", source, "--out", tmp_path / "out",
                     "--train-ratio", "0.8", "--val-ratio", "0.1")
    assert code == 0
    entry = json.loads((tmp_path / "out" / "edgesplits.json").read_text())["persona_000"]
    assert [len(entry[name]) for name in ("train", "val", "test")] == [40, 5, 5]
    assert set(entry) == {"train", "val", "test"}  # no `online` split: no stage read it
    code, _, err = cli("data", "prepare", "--source", source, "--out", tmp_path / "o2",
                       "--online-size", "4")
    assert code != 0 and not (tmp_path / "o2").exists()


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def _set_session_field(path: Path, line: int, session: int, key: str, value: object) -> None:
    record = json.loads(path.read_text().splitlines()[line - 1])
    record["sessions"][session][key] = value
    _replace_line(path, line, json.dumps(record))


BAD_INPUTS = {
    "malformed_json": (
        lambda src: _replace_line(src / "sessions.jsonl", 2, '{"sessions": [}'),
        "sessions.jsonl:2: malformed JSON"),
    "wrong_type": (
        lambda src: _set_session_field(src / "sessions.jsonl", 1, 3, "session_id", "three"),
        "sessions.jsonl:1: field 'sessions.3.session_id': Input should be a valid integer"),
    "out_of_range": (
        lambda src: _replace_line(src / "routines.jsonl", 2, json.dumps(
            {"routines": [{"triggers": {}, "actions": {"tv": {"volume": 101}}}]})),
        "routines.jsonl:2: field 'routines.0.actions.tv.volume': Input should be less than or "
        "equal to 100"),
    "line_count_mismatch": (
        lambda src: (src / "characters.jsonl").write_text('{"character": "only one"}\n'),
        "routines.jsonl:2: user 1 has no line in characters.jsonl"),
    "unknown_role": (
        lambda src: _set_session_field(src / "sessions.jsonl", 2, 0, "messages",
                                       [{"role": "system", "text": "hi"}]),
        "sessions.jsonl:2: field 'sessions.0.messages.0.role': Input should be 'user' or "
        "'assistant'"),
    "empty_file": (
        lambda src: (src / "routines.jsonl").write_text(""),
        "routines.jsonl: file is empty"),
    "missing_file": (
        lambda src: (src / "characters.jsonl").unlink(),
        "characters.jsonl: file not found"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_nonzero_with_located_message_and_writes_nothing(
    case: str, tmp_path, source_users, write_source_layout, cli
) -> None:
    break_input, message = BAD_INPUTS[case]
    source = write_source_layout(tmp_path / "src", source_users(n_users=2, n_sessions=6))
    break_input(source)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    for out in (tmp_path / "new", existing):
        code, stdout, stderr = cli("data", "prepare", "--source", source, "--out", out)
        assert code == 2
        assert message in stderr
        assert stderr.count("error:") == 1 and not stdout
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "src"]


def test_missing_source_directory_is_reported(tmp_path, cli) -> None:
    code, _, stderr = cli("data", "prepare", "--source", tmp_path / "nope", "--out", tmp_path / "o")
    assert code == 2
    assert f"{tmp_path / 'nope'}: source directory not found" in stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "exactly one of --source or --dialogues"),
     (["--source", "a", "--dialogues", "b"], "exactly one of --source or --dialogues"),
     (["--source", "a", "--train-ratio", "0.9"], "field '--val-ratio': Value error, "
                                                 "train_ratio + val_ratio must be below 1")],
)
def test_option_errors_exit_2(tmp_path, cli, args: list[str], message: str) -> None:
    code, _, stderr = cli("data", "prepare", "--out", tmp_path / "o", *args)
    assert code == 2
    assert message in " ".join(stderr.split())
    assert not (tmp_path / "o").exists()


def test_real_sample_prepares_with_thin_coverage_flagged(real_sample, tmp_path, cli) -> None:
    code, out, _ = cli("data", "prepare", "--dialogues", real_sample, "--out", tmp_path / "o")
    assert code == 0
    assert "validation: passed, 2 warnings" in out
    report = json.loads((tmp_path / "o" / "validation_report.json").read_text())
    coverage = next(c for c in report["checks"] if c["name"] == "coverage")
    assert coverage["passed"] and coverage["warnings"][0].startswith("100 personas have fewer")
    splits = json.loads((tmp_path / "o" / "edgesplits.json").read_text())
    assert len(splits) == 100
    assert splits["persona_002"] == {"train": [1], "val": [], "test": []}
    first = json.loads((tmp_path / "o" / "dialogs_clean.jsonl").read_text().splitlines()[0])
    assert list(first) == ["persona_id", "dialogue_idx", "messages"]
