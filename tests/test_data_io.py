"""Reading the source layout, cleaned dialogue files and prepare outputs, with located errors."""

from __future__ import annotations

import json

import pytest

from adaptcommand.data.io import (
    load_split,
    load_splits,
    read_dialogues_file,
    read_source_layout,
    select_split,
)
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.errors import DataError


def test_source_layout_becomes_dialogues_in_user_then_time_order(
    tmp_path, source_users, write_source_layout
) -> None:
    users = source_users(n_users=2, n_sessions=3)
    dialogues = read_source_layout(write_source_layout(tmp_path, users))
    assert [(d.persona_id, d.session_id) for d in dialogues] == [
        ("persona_000", 0), ("persona_000", 1), ("persona_000", 2),
        ("persona_001", 0), ("persona_001", 1), ("persona_001", 2),
    ]
    assert dialogues[4].character == "User 1, calm and brief."
    assert dialogues[4].applied_routines == [0]
    assert dialogues[3].applied_routines is None
    assert dialogues[0].routines[0].actions.lights.brightness == 40
    assert dialogues[0].meta.weather == "rainy"


def test_unknown_role_names_file_line_and_field(
    tmp_path, source_users, write_source_layout
) -> None:
    users = source_users(n_users=2, n_sessions=5)
    users[1]["sessions"][3]["messages"].append({"role": "robot", "text": "beep"})
    source = write_source_layout(tmp_path, users)
    with pytest.raises(DataError) as info:
        read_source_layout(source)
    assert str(info.value) == (
        f"{source / 'sessions.jsonl'}:2: field 'sessions.3.messages.2.role': "
        "Input should be 'user' or 'assistant'"
    )


def test_out_of_range_routine_value_is_located(tmp_path, source_users, write_source_layout):
    users = source_users(n_users=1, n_sessions=2)
    users[0]["routines"][0]["actions"]["ac"] = {"temperature": 40}
    with pytest.raises(DataError) as info:
        read_source_layout(write_source_layout(tmp_path, users))
    assert info.value.path.endswith("routines.jsonl")
    assert (info.value.line, info.value.field) == (1, "routines.0.actions.ac.temperature")
    assert "less than or equal to 30" in info.value.reason


def test_applied_routine_index_must_exist(tmp_path, source_users, write_source_layout) -> None:
    users = source_users(n_users=1, n_sessions=3)
    users[0]["sessions"][2]["applied_routines"] = [0, 4]
    with pytest.raises(DataError) as info:
        read_source_layout(write_source_layout(tmp_path, users))
    assert info.value.field == "sessions.2.applied_routines.1"
    assert "routine index 4 out of range" in info.value.reason


def test_duplicate_session_id_is_rejected(tmp_path, source_users, write_source_layout) -> None:
    users = source_users(n_users=1, n_sessions=3)
    users[0]["sessions"][2]["session_id"] = 0
    with pytest.raises(DataError) as info:
        read_source_layout(write_source_layout(tmp_path, users))
    assert info.value.field == "sessions.2.session_id"


def test_line_count_mismatch_points_at_the_extra_line(
    tmp_path, source_users, write_source_layout
) -> None:
    source = write_source_layout(tmp_path, source_users(n_users=3, n_sessions=2))
    routines = source / "routines.jsonl"
    routines.write_text("".join(routines.read_text().splitlines(keepends=True)[:2]))
    with pytest.raises(DataError) as info:
        read_source_layout(source)
    assert info.value.path == str(source / "characters.jsonl")
    assert info.value.line == 3
    assert "user 2 has no line in routines.jsonl" in info.value.reason


def test_dialogues_file_rejects_unknown_key_and_duplicate_session(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    messages = [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}]
    path.write_text(json.dumps({"persona_id": "p", "messages": messages, "mood": "x"}) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:1: field 'mood': unknown key"):
        read_dialogues_file(path)
    rows = [{"persona_id": "p", "session_id": 7, "messages": messages}] * 2
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'session_id': duplicate session_id 7"):
        read_dialogues_file(path)


def test_empty_dialogues_file_is_an_error(tmp_path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DataError, match="empty.jsonl: file is empty"):
        read_dialogues_file(path)


def test_real_sample_loads_with_its_extra_fields(real_sample) -> None:
    dialogues = read_dialogues_file(real_sample)
    assert len(dialogues) == 100
    assert dialogues[0].persona_id == "persona_000"
    assert dialogues[0].dialogue_idx == 40
    assert dialogues[0].session_id is None


def test_prepared_split_reads_back_per_persona(tmp_path, source_users, write_source_layout):
    source = write_source_layout(tmp_path / "src", source_users(n_users=2, n_sessions=10))
    prepare_from_source(source, tmp_path / "out")
    test = load_split(tmp_path / "out", "test")
    assert list(test) == ["persona_000", "persona_001"]
    assert [d.session_id for d in test["persona_001"]] == [8, 9]
    assert all(d.persona_id == "persona_001" for d in test["persona_001"])
    assert load_splits(tmp_path / "out")["persona_000"]["val"] == [6, 7]


def test_bad_split_file_and_out_of_range_index_are_located(tmp_path, real_sample) -> None:
    (tmp_path / "edgesplits.json").write_text(
        json.dumps({"p": {"train": [0, "x"], "val": [], "test": []}})
    )
    with pytest.raises(DataError, match=r"edgesplits.json: field 'p.train.1': Input should be"):
        load_splits(tmp_path)
    splits = {"p": {"train": [0, 5], "val": [], "test": []}}
    with pytest.raises(DataError, match=r"field 'p.train.1': index 5 out of range"):
        select_split(read_dialogues_file(real_sample)[:2], splits, "train")


def test_split_file_of_an_older_prepare_is_refused_with_the_fix(tmp_path) -> None:
    # its cold_start split included the sessions a merge profiled: re-preparing is the fix
    (tmp_path / "edgesplits.json").write_text(
        json.dumps({"p": {"train": [0], "val": [], "test": [], "online": [0]}}))
    with pytest.raises(DataError, match="older `data prepare`.*prepare the data again") as error:
        load_splits(tmp_path)
    assert error.value.field == "p.online"
