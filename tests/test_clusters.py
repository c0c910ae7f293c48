"""Behaviour clusters: feature values, separation, determinism, the `cluster` training strategy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcommand.arms.clusters import (
    CLUSTERS_FILE,
    behaviour_features,
    cluster_personas,
    persona_observations,
    raw_features,
)
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.errors import AdaptCommandError
from adaptcommand.fileio import write_json_atomic
from test_training_engine import single_thread  # noqa: F401  (autouse fixture)


def dialogue(persona: str, replies: list[str], routines: list[dict] | None = None
             ) -> CleanDialogue:
    messages = [m for reply in replies for m in ({"role": "user", "text": "Hi."},
                                                 {"role": "assistant", "text": reply})]
    routines = [{"triggers": {"time_of_day": "evening"}, "actions": a} for a in routines or []]
    return CleanDialogue.model_validate({"persona_id": persona, "messages": messages,
                                         "routines": routines or None})


def habit_persona(persona: str, lights: int, color: str, ac: int, mode: str) -> list[CleanDialogue]:
    """A persona whose routine and every reply set the same lights and AC."""
    reply = (f"Lights at {lights}% brightness with a {color} color, and the AC set to {ac} "
             f"degrees in {mode} mode.")
    routine = {"lights": {"brightness": lights, "color": color},
               "ac": {"temperature": ac, "mode": mode}}
    return [dialogue(persona, [reply, "Would you like me to dim the lights?"], [routine]),
            dialogue(persona, [reply])]


def two_groups() -> dict[str, list[CleanDialogue]]:
    """3 warm-and-heated personas, 3 bright-and-cooled ones (small differences inside a group)."""
    train = {f"warm_{i}": habit_persona(f"warm_{i}", 20 + i, "warm", 26, "heat") for i in range(3)}
    train |= {f"cool_{i}": habit_persona(f"cool_{i}", 90 - i, "cool", 18 - i % 2, "cool")
              for i in range(3)}
    return train


def test_features_of_a_hand_built_pair_have_the_known_values() -> None:
    habit = {"lights": {"brightness": 40, "color": "warm"},
             "ac": {"temperature": 23, "mode": "heat"}}
    a = [dialogue("a", ["Lights at 40% brightness with a warm color, and the AC set to 23 "
                        "degrees in heat mode.", "Lights set to 60% brightness.",
                        "Would you like me to dim the lights?"], [{"tv": {"volume": 80}}])]
    b = [dialogue("b", ["Speaker volume set to 30.", "Lights set to 60% brightness."])]
    # the routine (tv) is the dataset's answer key, never read; the offer sets nothing
    assert persona_observations(a) == [habit, {"lights": {"brightness": 60}}]
    features = raw_features(persona_observations(a))
    assert features["device:lights"] == pytest.approx(2 / 3)
    assert features["device:ac"] == pytest.approx(1 / 3) and features["device:tv"] == 0
    assert features["lights.brightness"] == pytest.approx(0.5)  # mean(40, 60) / 100
    assert features["ac.temperature"] == pytest.approx(0.5)  # (23 - 16) / (30 - 16)
    assert features["lights.color=warm"] == 1 and features["lights.color=cool"] == 0
    assert features["ac.mode=heat"] == 1 and "speaker.volume" not in features

    pair = behaviour_features({"a": a, "b": b}, ["a", "b"])
    # b never sets the AC or the colour: it gets a's values (column mean), so those columns have
    # no variance and are dropped; lights.brightness is 0.5 vs 0.6, kept; standardised to -1/+1.
    assert "ac.temperature" not in pair.names and "lights.color=warm" not in pair.names
    assert "device:speaker" in pair.names and "speaker.volume" not in pair.names
    column = pair.names.index("lights.brightness")
    assert pair.matrix[:, column].tolist() == pytest.approx([-1.0, 1.0])


def test_two_obvious_behaviour_groups_are_separated_and_auto_k_picks_two() -> None:
    train = two_groups()
    clustering = cluster_personas(train, list(train), None, seed=0)
    assert clustering.k == 2 and list(clustering.silhouettes) == [2, 3, 4, 5]
    assert clustering.silhouettes[2] > 0.5
    assert clustering.silhouettes[2] == max(s for s in clustering.silhouettes.values() if s)
    assert clustering.groups() == {"cluster-00": ["warm_0", "warm_1", "warm_2"],
                                   "cluster-01": ["cool_0", "cool_1", "cool_2"]}
    fixed = cluster_personas(train, list(train), 3, seed=0)
    assert fixed.k == 3 and list(fixed.silhouettes) == [3]


def test_same_input_gives_the_same_clusters_json(tmp_path: Path) -> None:
    train = two_groups()
    for name in ("first.json", "second.json"):
        write_json_atomic(tmp_path / name,
                          cluster_personas(train, list(train), None, seed=0).to_json())
    assert (tmp_path / "first.json").read_bytes() == (tmp_path / "second.json").read_bytes()


def test_impossible_cluster_counts_are_refused_clearly() -> None:
    train = two_groups()
    with pytest.raises(AdaptCommandError, match="clusters=6.*6"):
        cluster_personas(train, list(train), 6, seed=0)
    with pytest.raises(AdaptCommandError, match="at least 3 personas"):
        cluster_personas(train, ["warm_0", "cool_0"], None, seed=0)
    same = {p: habit_persona(p, 50, "warm", 22, "heat") for p in ("x", "y", "z")}
    with pytest.raises(AdaptCommandError, match="do not differ"):
        cluster_personas(same, list(same), None, seed=0)


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adaptcommand.data.prepare import prepare_from_source
    from adaptcommand.data.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(6, 6, seed=0, out_dir=root / "source")
    prepare_from_source(root / "source", root / "data")
    return root / "data"


TINY = {"model.name": "tiny-random", "optimizer.epochs": 1, "optimizer.batch_size": 4,
        "data.max_length": 96, "early_stopping.patience": None, "prompt.max_context_messages": 1}


def test_cluster_run_trains_one_adapter_per_cluster_and_routes_personas_to_it(
        synth_data: Path, tmp_path: Path) -> None:
    from adaptcommand.cli import app
    from adaptcommand.models.adapters import adapter_router, discover_adapters, read_record
    from adaptcommand.training.config import TrainingConfig
    from adaptcommand.training.recipes import run_training

    out = tmp_path / "out"
    config = TrainingConfig().updated(TINY)
    summary = run_training("cluster", config, synth_data, out, show_progress=False)
    clusters = json.loads((out / CLUSTERS_FILE).read_text())
    personas = [f"persona_{i:03d}" for i in range(6)]
    assert list(clusters["assignments"]) == personas
    assert clusters["k"] == len(clusters["clusters"]) >= 2
    assert clusters["silhouette"] == max(s for s in clusters["silhouettes"].values() if s)
    assert summary["adapters_done"] == summary["adapters_planned"] == clusters["k"]
    for name, members in clusters["clusters"].items():
        assert read_record(out / name)["personas"] == members
    routes, fallback = adapter_router(discover_adapters(out))
    assert {p: routes[p] for p in personas} == clusters["assignments"]

    # The CLI with the same settings resumes: nothing retrained, same clusters, silhouette shown.
    before = (out / CLUSTERS_FILE).read_bytes(), read_record(out / "cluster-00")
    args = ["train", "--strategy", "cluster", "--data", str(synth_data), "--out", str(out),
            "--config", str(Path(__file__).parents[1] / "configs" / "lora_training.json")]
    args += [part for key, value in TINY.items() for part in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(app, [a.replace("=None", "=null") for a in args])
    assert result.exit_code == 0, result.output
    assert "silhouette" in result.output
    assert ((out / CLUSTERS_FILE).read_bytes(), read_record(out / "cluster-00")) == before


def test_cli_help_explains_the_cluster_strategy() -> None:
    from adaptcommand.cli import app

    result = CliRunner().invoke(app, ["train", "--strategy", "cluster", "--help"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "cluster" in text and "cluster.k=K" in text and "silhouette" in text
