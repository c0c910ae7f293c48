"""Persona identification from user turns: accuracy, the centroid cache, and the HTTP extension."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from peft import LoraConfig, get_peft_model
from typer.testing import CliRunner

from adaptcommand.cli import app as cli_app
from adaptcommand.models.loading import load_model
from adaptcommand.serving import identify as identify_module
from adaptcommand.serving.app import create_app
from adaptcommand.serving.config import ServeSettings
from adaptcommand.serving.identify import (
    evaluate_identification,
    identify,
    load_centroids,
)

# Three personas whose user turns share no topic: cooking, football, gardening.
TOPICS = {
    "persona_000": ["I'm baking sourdough bread tonight", "the risotto needs more parmesan",
                    "preheat the oven for the lasagna", "my soup recipe needs fresh basil",
                    "the pasta is simmering on the stove", "I burned the garlic again"],
    "persona_001": ["the football match kicks off at eight", "my team scored in the derby",
                    "the striker missed a penalty", "the league table looks great for us",
                    "the goalkeeper made a brilliant save", "the stadium crowd is loud"],
    "persona_002": ["I'm repotting the tomato seedlings", "the roses need pruning and compost",
                    "the garden beds need weeding", "my tulip bulbs finally sprouted",
                    "I watered the herbs on the balcony", "the lawn needs mowing"],
}
SESSIONS = 6  # per persona: 4 train, 1 val, 1 test


def _session(topic: list[str], pid: str, index: int) -> dict:
    turns = [topic[index], topic[(index + 1) % len(topic)]]
    messages = []
    for turn in turns:
        messages += [{"role": "user", "text": f"{turn}, set the lights to 40."},
                     {"role": "assistant", "text": "Lights set to 40."}]
    return {"persona_id": pid, "session_id": index, "messages": messages}


def write_data(directory: Path, topics: dict[str, list[str]] = TOPICS) -> Path:
    """A `data prepare`-shaped directory: dialogs_clean.jsonl and edgesplits.json."""
    directory.mkdir(parents=True, exist_ok=True)
    lines, splits = [], {}
    for pid, topic in topics.items():
        start = len(lines)
        lines += [json.dumps(_session(topic, pid, i)) for i in range(SESSIONS)]
        indices = list(range(start, start + SESSIONS))
        splits[pid] = {"train": indices[:4], "val": indices[4:5], "test": indices[5:]}
    (directory / "dialogs_clean.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "edgesplits.json").write_text(json.dumps(splits), encoding="utf-8")
    return directory


@pytest.fixture
def data(tmp_path) -> Path:
    return write_data(tmp_path / "data")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """The centroid cache, kept inside the test's own directory."""
    monkeypatch.setattr(identify_module, "cache_root", lambda: tmp_path / "cache")
    return tmp_path / "cache" / "identify"


def test_distinct_personas_are_identified_from_held_out_sessions(data, tmp_path, cache_dir):
    report = evaluate_identification(data, tmp_path / "out", split="test")
    assert report["accuracy_at_1"] == 1.0 and report["accuracy_at_5"] == 1.0
    assert (report["n_queries"], report["n_personas"], report["skipped_queries"]) == (3, 3, 0)
    assert report["query_unit"] == "session"
    assert report["per_persona_accuracy_at_1"] == {pid: 1.0 for pid in TOPICS}
    assert json.loads((tmp_path / "out" / "identify.json").read_text()) == report
    assert (tmp_path / "out" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_new_text_ranks_the_persona_with_that_vocabulary_first(data, cache_dir):
    centroids = load_centroids(data)
    ranked = identify(centroids, ["the penalty kick decided the match"])
    assert [pid for pid, _ in ranked][0] == "persona_001"
    assert len(ranked) == 3 and ranked[0][1] > ranked[1][1] >= ranked[2][1]


def test_centroids_are_cached_as_npz_and_recomputed_when_data_change(data, cache_dir,
                                                                      monkeypatch):
    first = load_centroids(data)
    [cached] = cache_dir.glob("centroids-*.npz")
    with np.load(cached, allow_pickle=False) as saved:
        assert list(saved["persona_ids"]) == list(TOPICS)
    with monkeypatch.context() as patch:
        patch.setattr(identify_module, "build_centroids",
                      lambda train: pytest.fail("recomputed despite a valid cache"))
        again = load_centroids(data)
    assert again.persona_ids == first.persona_ids
    np.testing.assert_array_equal(again.vectors, first.vectors)

    grilling = ["I'm grilling salmon with lemon tonight", *TOPICS["persona_000"][1:]]
    changed = load_centroids(write_data(data, {**TOPICS, "persona_000": grilling}))
    assert len(list(cache_dir.glob("centroids-*.npz"))) == 2
    assert not np.allclose(changed.vectors[0], first.vectors[0])


def test_cli_writes_the_report(data, tmp_path, cache_dir):
    out = tmp_path / "cli"
    result = CliRunner().invoke(cli_app, ["identify", "--data", str(data), "--out", str(out),
                                          "--split", "val"])
    assert result.exit_code == 0, result.output
    assert "accuracy@1 1.000" in result.output
    assert json.loads((out / "identify.json").read_text())["split"] == "val"


def test_server_identifies_the_speaker_when_asked(data, tmp_path, cache_dir):
    adapters = tmp_path / "adapters"
    base = load_model("tiny-random", device="cpu").model
    get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(
        str(adapters / "persona_002"))
    settings = ServeSettings(adapters_dir=adapters, model="tiny-random", device="cpu",
                             data_dir=data, system_prompt="You run a smart home.")
    ask = {"messages": [{"role": "user", "content": "my tomato plants need compost"}],
           "max_tokens": 4}
    with TestClient(create_app(settings)) as client:
        identified = client.post("/v1/chat/completions", json={**ask, "identify_user": True})
        named = client.post("/v1/chat/completions",
                            json={**ask, "identify_user": True, "user": "persona_000"})
        plain = client.post("/v1/chat/completions", json=ask)
    body = identified.json()
    assert body["identified_user"]["persona_id"] == "persona_002"
    assert [c["persona_id"] for c in body["identified_user"]["candidates"]][0] == "persona_002"
    assert body["adapter"] == "persona_002"
    assert named.json()["identified_user"] is None  # an explicit user wins
    assert plain.json()["identified_user"] is None and plain.json()["adapter"] == "base"


def test_identify_without_data_is_a_400(tmp_path):
    (tmp_path / "adapters").mkdir()
    settings = ServeSettings(adapters_dir=tmp_path / "adapters", model="tiny-random",
                             device="cpu")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "hi"}], "identify_user": True})
    assert response.status_code == 400
    assert "--data" in response.json()["error"]["message"]
