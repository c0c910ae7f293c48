"""Training runs end to end on tiny-random: strategies, outputs, resume, refusal, CLI."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.errors import AdaptCommandError
from adaptcommand.fileio import write_json_atomic, write_jsonl_atomic
from adaptcommand.routines.mining import MiningSettings
from adaptcommand.training import recipes, runner
from adaptcommand.training.config import LoraSettings, TrainingConfig
from adaptcommand.training.export import RECORD_FILE, WEIGHTS_FILE, save_adapter
from test_training_engine import single_thread  # noqa: F401  (autouse fixture)

PERSONAS = ["persona_000", "persona_001", "persona_002"]
SESSIONS = 5  # 3 train, 1 val, 1 test


def make_data(root: Path) -> Path:
    """A tiny data-prepare output: each persona has its own favourite settings."""
    lines, splits = [], {}
    for p, persona in enumerate(PERSONAS):
        indices = []
        for s in range(SESSIONS):
            indices.append(len(lines))
            lines.append({"persona_id": persona, "session_id": s, "messages": [
                {"role": "user", "text": f"Evening {s}, lights please."},
                {"role": "assistant", "text": f"Lights at {20 + 10 * p}% brightness."},
                {"role": "user", "text": "And the AC?"},
                {"role": "assistant", "text": f"AC set to {18 + p} degrees, cool mode."},
            ]})
        splits[persona] = {"train": indices[:3], "val": indices[3:4], "test": indices[4:]}
    data = root / "data"
    write_jsonl_atomic(data / "dialogs_clean.jsonl", lines)
    write_json_atomic(data / "edgesplits.json", splits)
    return data


def tiny_config(overrides: dict[str, object] | None = None) -> TrainingConfig:
    """A tiny-model config; `overrides` are dotted (`{"optimizer.epochs": 1}`)."""
    base = {"model.name": "tiny-random", "optimizer.epochs": 2, "optimizer.batch_size": 2,
            "data.max_length": 96, "throughput.adapters_per_step": 2,
            "optimizer.learning_rate": 1e-2, "early_stopping.patience": None}
    return TrainingConfig().updated(base | (overrides or {}))


def train(data: Path, out: Path, strategy: runner.Strategy = "per-user",
          **kwargs: object) -> dict:
    config = kwargs.pop("config", tiny_config())
    return recipes.run_training(strategy, config, data, out, show_progress=False, **kwargs)


def test_per_user_run_writes_adapters_summary_and_manifest(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    summary = train(data, tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*PERSONAS, "manifest.json", "training_summary.json"])
    assert summary == json.loads((out / "training_summary.json").read_text())
    assert summary["adapters_done"] == 3 and list(summary["adapters"]) == PERSONAS
    for persona, record in summary["adapters"].items():
        # 3 train sessions x 2 assistant turns = 6 examples -> 3 steps/epoch, 2 epochs
        assert record["steps"] == 6 and record["train_examples"] == 6
        assert record["val_examples"] == 2 and len(record["val_loss"]) == 2
        assert record["personas"] == [persona] and record["tokens"] > 0
        assert (out / persona / "adapter_config.json").is_file()
        weights = load_file(out / persona / WEIGHTS_FILE)
        assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in weights
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["strategy"] == "per-user" and manifest["base_model"] == "tiny-random"
    assert manifest["config"]["prompt"]["system_prompt"]  # the default prompt, resolved, pinned
    assert len(manifest["data_fingerprint"]) == 64 and manifest["package_version"]


def test_same_seed_gives_byte_identical_adapters(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    for out in ("a", "b"):
        train(data, tmp_path / out, personas=["persona_002"],
              config=tiny_config({"optimizer.epochs": 1}))
    weights = [(tmp_path / out / "persona_002" / WEIGHTS_FILE).read_bytes() for out in "ab"]
    assert weights[0] == weights[1]
    train(data, tmp_path / "c", personas=["persona_002"],
          config=tiny_config({"optimizer.epochs": 1, "seed": 1}))
    assert (tmp_path / "c" / "persona_002" / WEIGHTS_FILE).read_bytes() != weights[0]


def crash_after_first_save(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the runner die while saving its second adapter, as a kill would; returns the list
    the names of saved adapters are appended to."""
    saved: list[str] = []

    def crash_after_first(path, *args):
        if saved:
            raise RuntimeError("killed")
        save_adapter(path, *args)
        saved.append(Path(path).name)

    monkeypatch.setattr(runner, "save_adapter", crash_after_first)
    return saved


def record_saves(monkeypatch: pytest.MonkeyPatch, saved: list[str]) -> None:
    """Let the runner save normally again, appending each saved adapter's name to `saved`."""

    def spy(path, *args):
        saved.append(Path(path).name)
        save_adapter(path, *args)

    monkeypatch.setattr(runner, "save_adapter", spy)


def test_rerun_after_a_crash_skips_finished_adapters(tmp_path: Path, monkeypatch) -> None:
    data, out = make_data(tmp_path), tmp_path / "out"
    saved = crash_after_first_save(monkeypatch)
    with pytest.raises(RuntimeError, match="killed"):
        train(data, out, config=tiny_config({"throughput.adapters_per_step": 1}))
    first = out / saved[0] / WEIGHTS_FILE
    before = first.read_bytes()
    assert json.loads((out / "training_summary.json").read_text())["adapters_done"] == 1
    assert not list(out.glob(".*.tmp"))  # the failed adapter left no temp directory
    # only its epoch-end checkpoint, which the rerun resumes from and then removes
    assert saved == [PERSONAS[0]]
    assert [p.name for p in (out / ".checkpoints").iterdir()] == [PERSONAS[1]]
    (out / ".persona_001.x1y2.tmp").mkdir()  # what a kill -9 inside atomic_dir leaves

    record_saves(monkeypatch, saved)
    summary = train(data, out, config=tiny_config({"throughput.adapters_per_step": 1}))
    assert saved[1:] == [p for p in PERSONAS if p != saved[0]]  # the finished one is skipped
    assert first.read_bytes() == before
    assert summary["adapters_done"] == 3 and not list(out.glob(".*"))


def test_changed_config_is_refused_unless_forced(tmp_path: Path) -> None:
    data, out = make_data(tmp_path), tmp_path / "out"
    train(data, out, personas=["persona_000"], config=tiny_config({"optimizer.epochs": 1}))
    with pytest.raises(AdaptCommandError, match="config_hash"):
        train(data, out, personas=["persona_000"], config=tiny_config({"optimizer.epochs": 2}))
    # throughput-only knobs may change on resume; other personas may be added
    train(data, out, personas=["persona_001"],
          config=tiny_config({"optimizer.epochs": 1, "throughput.adapters_per_step": 5}))
    summary = train(data, out, personas=["persona_000"],
                    config=tiny_config({"optimizer.epochs": 2}),
                    force=True)
    assert summary["adapters"]["persona_000"]["steps"] == 6  # retrained with 2 epochs
    splits = json.loads((data / "edgesplits.json").read_text())
    splits["persona_000"]["test"] = []  # any change of the split file
    write_json_atomic(data / "edgesplits.json", splits)
    with pytest.raises(AdaptCommandError, match="data_fingerprint"):
        train(data, out, personas=["persona_000"], config=tiny_config({"optimizer.epochs": 2}))


def test_a_run_that_mines_profiles_is_refused_after_the_miner_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mined profiles are training data: other miner settings mean other examples."""
    data = make_data(tmp_path)
    plain, profiled = tiny_config({"optimizer.epochs": 1}), tiny_config(
        {"optimizer.epochs": 1, "prompt.profile": "line"})
    train(data, tmp_path / "plain", personas=["persona_000"], config=plain)
    train(data, tmp_path / "profiled", personas=["persona_000"], config=profiled)
    monkeypatch.setattr(runner, "MiningSettings", partial(MiningSettings, min_support=2))
    train(data, tmp_path / "plain", personas=["persona_001"], config=plain)  # mines nothing
    with pytest.raises(AdaptCommandError, match="profile miner settings"):
        train(data, tmp_path / "profiled", personas=["persona_001"], config=profiled)


def test_unified_then_hybrid_starts_from_the_unified_weights(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    unified = train(data, tmp_path / "uni", strategy="unified")
    assert list(unified["adapters"]) == ["unified"]
    record = unified["adapters"]["unified"]
    assert record["personas"] == PERSONAS and record["train_examples"] == 18
    assert record["steps"] == 18  # 9 batches x 2 epochs
    start = load_file(tmp_path / "uni" / "unified" / WEIGHTS_FILE)
    # a learning rate too small to move the weights: each hybrid adapter stays at its start
    train(data, tmp_path / "hyb", strategy="hybrid", init_from=tmp_path / "uni" / "unified",
          personas=["persona_002"], config=tiny_config({"optimizer.learning_rate": 1e-12}))
    hybrid = load_file(tmp_path / "hyb" / "persona_002" / WEIGHTS_FILE)
    assert any(t.abs().sum() > 0 for k, t in start.items() if "lora_B" in k)
    for key, tensor in start.items():
        torch.testing.assert_close(hybrid[key], tensor, atol=1e-6, rtol=0)
    with pytest.raises(AdaptCommandError, match="init-from"):
        train(data, tmp_path / "hyb2", strategy="hybrid")


def test_a_strategy_is_one_of_the_recipes_and_only_hybrid_takes_a_start(tmp_path: Path) -> None:
    data, out = make_data(tmp_path), tmp_path / "out"
    with pytest.raises(AdaptCommandError, match="unknown strategy 'nope'.*per-user, unified"):
        train(data, out, strategy="nope")  # type: ignore[arg-type]
    with pytest.raises(AdaptCommandError, match="only used by --strategy hybrid"):
        train(data, out, strategy="per-user", init_from=tmp_path)
    assert not out.exists()  # refused before anything is written
    assert set(recipes.RECIPES) | {"hybrid"} == {"per-user", "unified", "hybrid", "cluster"}


def test_cli_trains_with_overrides_and_reports_errors(tmp_path: Path) -> None:
    data, out = make_data(tmp_path), tmp_path / "out"
    config = Path(__file__).parents[1] / "configs" / "lora_training.json"

    def cli(*sets: str) -> list[str]:
        args = ["train", "--strategy", "per-user", "--config", str(config), "--data", str(data),
                "--out", str(out), "--model", "tiny-random", "--personas", "persona_001",
                "--set", "data.max_length=96", "--set", "early_stopping.patience=null"]
        return args + [part for s in sets for part in ("--set", s)]

    result = CliRunner().invoke(app, cli("optimizer.epochs=1"))
    assert result.exit_code == 0, result.output
    assert "1/1 adapters" in result.output
    record = json.loads((out / "persona_001" / RECORD_FILE).read_text())
    assert record["epochs_run"] == 1 and record["steps"] == 2  # 6 examples, batch 4
    refused = CliRunner().invoke(app, cli("optimizer.epochs=2"))
    assert isinstance(refused.exception, AdaptCommandError)
    assert "config_hash" in str(refused.exception)
    unknown = CliRunner().invoke(app, cli("lr=1"))
    assert "lr" in str(unknown.exception) and "unknown key" in str(unknown.exception)


def test_reference_config_file_holds_the_reference_defaults() -> None:
    config = Path(__file__).parents[1] / "configs" / "lora_training.json"
    assert json.loads(config.read_text()) == TrainingConfig().model_dump()
    assert TrainingConfig().adapter == LoraSettings(r=8, target_modules=["q_proj", "v_proj"])


@pytest.mark.slow
def test_short_per_user_training_lowers_that_personas_val_loss_on_the_embedded_model(
        tmp_path: Path) -> None:
    from peft import PeftModel

    from adaptcommand.data.io import load_split
    from adaptcommand.models.loading import load_model
    from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT
    from adaptcommand.training.batching import pack
    from adaptcommand.training.examples import build_examples, turn_terminator

    data, out = make_data(tmp_path), tmp_path / "out"
    config = tiny_config({"model.name": "embedded", "optimizer.epochs": 2,
                          "optimizer.learning_rate": 1e-3, "data.max_length": 256})
    summary = train(data, out, personas=["persona_001"], config=config)
    record = summary["adapters"]["persona_001"]

    loaded = load_model("embedded")
    val = build_examples(loaded.tokenizer, load_split(data, "val")["persona_001"],
                         end_of_turn_id=turn_terminator(loaded.tokenizer, loaded.end_of_turn_ids),
                         system_prompt=DEFAULT_SYSTEM_PROMPT, max_context_messages=5,
                         max_length=256)
    batch = pack([val], loaded.device)

    def val_loss(model) -> float:
        with torch.no_grad():
            return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         labels=batch.labels).loss.item()

    before = val_loss(loaded.model)
    after = val_loss(PeftModel.from_pretrained(loaded.model, str(out / "persona_001")).eval())
    assert after == pytest.approx(record["val_loss"][record["best_epoch"] - 1], abs=1e-3)
    assert after < 0.8 * before, (before, after)


def test_an_adapter_does_not_depend_on_what_else_the_run_trains(tmp_path: Path) -> None:
    """At the default dropout, one adapter per step (the CPU default): the same file, byte for
    byte, whether trained with every persona or alone (--personas)."""
    data = make_data(tmp_path)
    config = tiny_config({"throughput.adapters_per_step": 1})
    assert config.adapter.dropout == TrainingConfig().adapter.dropout == 0.05
    train(data, tmp_path / "all", config=config)
    train(data, tmp_path / "one", personas=["persona_002"], config=config)
    assert ((tmp_path / "all" / "persona_002" / WEIGHTS_FILE).read_bytes()
            == (tmp_path / "one" / "persona_002" / WEIGHTS_FILE).read_bytes())


def test_killed_unified_run_resumes_from_its_last_epoch_checkpoint(tmp_path: Path,
                                                                   monkeypatch) -> None:
    from adaptcommand.training import engine
    from adaptcommand.training.checkpoints import CHECKPOINTS_DIR

    data = make_data(tmp_path)
    config = tiny_config({"optimizer.epochs": 3})  # 9 steps an epoch
    train(data, tmp_path / "whole", strategy="unified", config=config)
    steps: list[str] = []

    def kill_at_step_13(point: str) -> None:
        steps.append(point)
        if len(steps) == 13 and "resumed" not in steps:  # mid epoch 2 of the first run
            raise RuntimeError("killed")

    monkeypatch.setattr(engine, "pause_point", kill_at_step_13)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed"):
        train(data, out, strategy="unified", config=config)
    state = json.loads((out / CHECKPOINTS_DIR / "unified" / "state.json").read_text())
    assert state["progress"]["steps"] == 9 and not (out / "unified").exists()

    steps[:] = ["resumed"]
    summary = train(data, out, strategy="unified", config=config)
    assert len(steps) == 1 + 18  # epochs 2 and 3 only
    assert summary["adapters"]["unified"]["steps"] == 27
    assert ((out / "unified" / WEIGHTS_FILE).read_bytes()
            == (tmp_path / "whole" / "unified" / WEIGHTS_FILE).read_bytes())
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "training_summary.json",
                                                     "unified"]  # checkpoints gone


def test_checkpoints_round_trip_and_ignore_another_run_s(tmp_path: Path) -> None:
    from adaptcommand.training.checkpoints import Checkpoint, Checkpoints

    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    param.sum().backward()
    optimizer.step()
    scheduler.step()
    weights = {"w": param.detach().clone()}
    saved = Checkpoint(weights, None, optimizer.state_dict(), scheduler.state_dict(),
                       {"steps": 1, "val_loss": [None]})
    Checkpoints(tmp_path, {"a": "run-1"}).save("a", saved)
    assert Checkpoints(tmp_path, {"a": "run-2"}).load("a") is None
    loaded = Checkpoints(tmp_path, {"a": "run-1"}).load("a")
    assert loaded is not None and loaded.best is None and loaded.progress == saved.progress
    assert torch.equal(loaded.weights["w"], weights["w"]) and loaded.scheduler["last_epoch"] == 1
    state = loaded.optimizer["state"][0]
    assert all(torch.equal(state[k], v) for k, v in optimizer.state_dict()["state"][0].items())
    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    fresh.load_state_dict(loaded.optimizer)
    assert fresh.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temp directory left


def test_skipping_known_questions_trains_fewer_replies(tmp_path: Path) -> None:
    """The train sessions' one question ("What temperature would you like for the AC?") asks
    for what the mined line states (the AC's usual setting): with the option it is not
    learned, so each adapter trains one reply fewer a session that asks."""
    data = make_data(tmp_path)
    dialogues = [json.loads(line) for line in (data / "dialogs_clean.jsonl").open()]
    for dialogue in dialogues:
        dialogue["messages"][3:] = [
            {"role": "assistant", "text": "What temperature would you like for the AC?"},
            {"role": "user", "text": "21, please."},
            {"role": "assistant", "text": "AC set to 21 degrees."}]
    write_jsonl_atomic(data / "dialogs_clean.jsonl", dialogues)
    line = {"optimizer.epochs": 1, "optimizer.batch_size": 1, "prompt.profile": "line"}
    plain = train(data, tmp_path / "plain", config=tiny_config(line))
    skipping = train(data, tmp_path / "skipping",
                     config=tiny_config(line | {"data.skip_known_questions": True}))
    for persona in PERSONAS:  # batch_size 1: a step per learned reply, 3 train sessions
        assert plain["adapters"][persona]["steps"] == 3 * 3
        assert skipping["adapters"][persona]["steps"] == 3 * 2
