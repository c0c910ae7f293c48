"""Retrieval memory: same-persona train exchanges only, in the prompt and the run identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.arms.memory import (
    MEMORY_HEADER,
    Exchange,
    RetrievalMemory,
    train_exchanges,
    with_memory,
)
from adaptcommand.cli import app
from adaptcommand.data.schema import CleanDialogue, Message
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation import predictor
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.runs import Scope, evaluate_arm, retrieval_prompts
from adaptcommand.evaluation.turns import Turn
from adaptcommand.models.prompting import render_prompt

AC = ("Set the AC to 21 degrees in cool mode.", "AC set to 21 degrees, cool mode.")
SPEAKER = ("Play some jazz on the speaker at volume 30.", "Speaker playing at volume 30.")
ALARM = ("Arm the security system, alarm volume 80.", "Security armed, alarm at 80.")
TV = ("Put the TV on HDMI2 at volume 17.", "TV on HDMI2, volume 17.")


def session(persona: str, session_id: int, *pairs: tuple[str, str]) -> CleanDialogue:
    messages = [Message(role=role, text=text)
                for pair in pairs for role, text in zip(("user", "assistant"), pair, strict=True)]
    return CleanDialogue(persona_id=persona, session_id=session_id, messages=messages)


def test_train_exchanges_pair_each_answered_user_message_once() -> None:
    dialogue = CleanDialogue(persona_id="a", messages=[
        Message(role="assistant", text="Hello!"),
        Message(role="user", text="Hi."),
        Message(role="user", text=AC[0]),
        Message(role="assistant", text=AC[1]),
    ])
    assert train_exchanges([dialogue, dialogue]) == [Exchange(*AC)]


def test_search_returns_the_most_similar_exchanges_of_that_persona_only() -> None:
    train = {"a": [session("a", 0, SPEAKER, AC), session("a", 1, ALARM)],
             "b": [session("b", 0, ("Set the AC to 21 degrees in cool mode please.", "B's AC."))]}
    memory = RetrievalMemory(train, k=2)
    [found] = memory.search("a", ["Could you put the AC on 21 degrees, cool?"])
    assert found[0] == Exchange(*AC) and len(found) == 2
    assert all(exchange in train_exchanges(train["a"]) for exchange in found)
    assert memory.search("b", ["play jazz", "arm the alarm"]) == [
        [Exchange("Set the AC to 21 degrees in cool mode please.", "B's AC.")]] * 2
    assert memory.search("nobody", ["anything"]) == [[]]


def test_with_memory_appends_the_exchanges_to_the_system_prompt() -> None:
    assert with_memory("SYS", []) == "SYS"
    assert with_memory("SYS", [Exchange(*AC)]) == (
        f"SYS\n\n{MEMORY_HEADER}\nUser: {AC[0]}\nAssistant: {AC[1]}")
    assert with_memory(None, [Exchange(*AC)]).startswith(MEMORY_HEADER)


def write_data(directory: Path, dialogues: list[CleanDialogue], splits: dict) -> Path:
    directory.mkdir(parents=True)
    lines = [d.model_dump_json(exclude_none=True) for d in dialogues]
    (directory / "dialogs_clean.jsonl").write_text("\n".join(lines) + "\n")
    (directory / "edgesplits.json").write_text(json.dumps(splits))
    return directory


def test_memory_prompts_never_show_test_turns_or_other_personas(tmp_path: Path) -> None:
    # the test turn's own exchange, and persona b's copy of it, would be the best matches
    dialogues = [session("a", 0, SPEAKER, AC), session("a", 1, ALARM), session("a", 2, TV),
                 session("b", 0, TV)]
    splits = {"a": {"train": [0, 1], "val": [], "test": [2]},
              "b": {"train": [3], "val": [], "test": []}}
    data = write_data(tmp_path / "data", dialogues, splits)
    prompts = retrieval_prompts(Scope(data=data), EvalConfig(), retrieval_k=5)
    turn = Turn("a", 2, 1, (Message(role="user", text=TV[0]),), TV[1])
    [system] = prompts([turn])
    assert system.startswith(EvalConfig().prompt.system_prompt)
    for text in (*SPEAKER, *AC, *ALARM):
        assert text in system
    assert TV[1] not in system and system.count(TV[0]) == 0


def test_baseline_with_retrieval_end_to_end(
    synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    systems: list[str | None] = []

    def recording_render(tokenizer, messages, system_prompt, max_context_messages, profile=None):
        systems.append(system_prompt)
        return render_prompt(tokenizer, messages, system_prompt, max_context_messages, profile)

    monkeypatch.setattr(predictor, "render_prompt", recording_render)
    common = ["--data", str(synthetic_data), "--model", "tiny-random", "--max-examples", "4",
              "--set", "generation.max_new_tokens=4", "--set", "evaluation.bootstrap_resamples=20"]
    runner = CliRunner()
    plain = runner.invoke(app, ["baseline", "--out", str(tmp_path / "plain"), *common])
    assert plain.exit_code == 0, plain.output
    assert systems == [EvalConfig().prompt.system_prompt] * 4
    systems.clear()
    memory = runner.invoke(app, ["baseline", "--retrieval-k", "2", "--out",
                                 str(tmp_path / "memory"), *common])
    assert memory.exit_code == 0, memory.output
    assert len(systems) == 4
    assert all(s.count("\nUser: ") == 2 and s.count("\nAssistant: ") == 2 for s in systems)

    results = json.loads((tmp_path / "memory" / "results.json").read_text())
    assert results["arm"] == "baseline+memory" and results["retrieval_k"] == 2
    assert "retrieval_k" not in json.loads((tmp_path / "plain" / "results.json").read_text())
    other_k = runner.invoke(app, ["baseline", "--retrieval-k", "3", "--out",
                                  str(tmp_path / "memory"), *common])
    assert "different config" in str(other_k.exception)  # runs with different k never mix


def test_retrieval_refuses_the_train_split_and_dialogue_files(
    synthetic_data: Path, real_sample: Path, tmp_path: Path
) -> None:
    train = EvalConfig.model_validate({"evaluation": {"split": "train"}})
    with pytest.raises(AdaptCommandError, match="retrieve itself"):
        evaluate_arm(train, Scope(data=synthetic_data), tmp_path, "x", retrieval_k=2)
    with pytest.raises(AdaptCommandError, match="needs --data"):
        retrieval_prompts(Scope(dialogues=real_sample), EvalConfig(), retrieval_k=2)
