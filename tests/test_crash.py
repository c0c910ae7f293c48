"""Real crashes: `adaptcommand train` and `eval` run as subprocesses and are SIGKILLed at named
points (adaptcommand.crashpoints); rerunning the same command must give what an uninterrupted
run gives, byte for byte, and leave nothing half-written.

Each subprocess costs seconds of imports, so only the killed runs are subprocesses; the reruns
and the uninterrupted references run the same command in this process (one torch thread, as
the subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.crashpoints import PAUSE_AT, PAUSE_MARKER
from adaptcommand.training.checkpoints import CHECKPOINTS_DIR
from adaptcommand.training.export import CONFIG_FILE, RECORD_FILE, WEIGHTS_FILE
from test_training_engine import single_thread  # noqa: F401  (autouse: same threads as below)
from test_training_runner import PERSONAS, make_data

SRC = Path(__file__).resolve().parents[1] / "src"
TRAINING = {"model": {"name": "tiny-random"},
            "optimizer": {"epochs": 3, "batch_size": 2, "learning_rate": 1e-2},
            "data": {"max_length": 96}, "throughput": {"adapters_per_step": 1},
            "early_stopping": {"patience": None}}  # dropout default
EVAL_ARGS = ["--model", "tiny-random", "--skip-assistant-turns", "0",
             "--set", "generation.max_new_tokens=12"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.pop(PAUSE_AT, None)
    return env | extra


def kill_at(args: list[str], point: str, tmp_path: Path) -> None:
    """Start the command, wait until it pauses at `point` (`name:n`), SIGKILL it."""
    marker = tmp_path / f"paused-{point.replace(':', '-')}"
    proc = subprocess.Popen([sys.executable, "-m", "adaptcommand", *args],
                            env=cli_env(**{PAUSE_AT: point, PAUSE_MARKER: str(marker)}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"exited ({proc.returncode}) before {point}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never reached {point}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def train_args(data: Path, out: Path, config: Path, strategy: str) -> list[str]:
    return ["train", "--strategy", strategy, "--data", str(data), "--out", str(out),
            "--config", str(config)]


def in_process(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "training.json"
    config.write_text(json.dumps(TRAINING), encoding="utf-8")
    return make_data(tmp_path), config


def weights(out: Path, names: list[str]) -> dict[str, bytes]:
    return {name: (out / name / WEIGHTS_FILE).read_bytes() for name in names}


def test_unified_run_killed_mid_step_then_mid_checkpoint_resumes_to_the_same_adapter(
        tmp_path: Path, setup: tuple[Path, Path]) -> None:
    data, config = setup
    in_process(train_args(data, tmp_path / "whole", config, "unified"))
    out = tmp_path / "out"
    args = train_args(data, out, config, "unified")

    kill_at(args, "train.step:13", tmp_path)  # 9 steps an epoch: mid epoch 2
    state = json.loads((out / CHECKPOINTS_DIR / "unified" / "state.json").read_text())
    assert state["progress"]["steps"] == 9 and not (out / "unified").exists()

    kill_at(args, "train.checkpoint:1", tmp_path)  # resumed; killed saving epoch 2's checkpoint
    state = json.loads((out / CHECKPOINTS_DIR / "unified" / "state.json").read_text())
    assert state["progress"]["steps"] == 9  # the old checkpoint is intact
    assert list((out / CHECKPOINTS_DIR).glob(".unified.*.tmp"))  # the new one was half-written

    in_process(args)
    assert weights(out, ["unified"]) == weights(tmp_path / "whole", ["unified"])
    assert json.loads((out / "unified" / RECORD_FILE).read_text())["steps"] == 27
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "training_summary.json",
                                                     "unified"]


def test_per_user_run_and_eval_killed_mid_save_and_mid_stream_resume_to_the_same_outputs(
        tmp_path: Path, setup: tuple[Path, Path]) -> None:
    data, config = setup
    whole, out = tmp_path / "whole", tmp_path / "out"
    in_process(train_args(data, whole, config, "per-user"))
    args = train_args(data, out, config, "per-user")

    kill_at(args, "train.save:2", tmp_path)  # the second adapter's directory half-written
    complete = [p for p in PERSONAS if (out / p).exists()]
    assert complete == [PERSONAS[0]]
    assert {p.name for p in (out / PERSONAS[0]).iterdir()} == {CONFIG_FILE, WEIGHTS_FILE,
                                                               RECORD_FILE}
    assert list(out.glob(f".{PERSONAS[1]}.*.tmp"))
    in_process(args)
    assert weights(out, PERSONAS) == weights(whole, PERSONAS)
    assert not list(out.glob(".*"))

    eval_args = ["eval", "--adapters", str(out), "--data", str(data), *EVAL_ARGS]
    in_process([*eval_args, "--out", str(tmp_path / "eval-whole")])
    run = tmp_path / "eval"
    kill_at([*eval_args, "--out", str(run)], "eval.predict:3", tmp_path)
    lines = (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and not (run / "results.json").exists()
    with (run / "predictions.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(lines[0][: len(lines[0]) // 2])  # what a kill mid-write leaves
    in_process([*eval_args, "--out", str(run)])
    for name in ("predictions.jsonl", "results.json", "per_persona_summary.csv"):
        assert (run / name).read_bytes() == (tmp_path / "eval-whole" / name).read_bytes(), name
