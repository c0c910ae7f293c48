"""No arm reads what a deployed assistant would not see: blank it, and the output is the same.

What each arm may read, and what the guard blanks (`leak_guard.blank_data`); `routines`,
`applied_routines` and `character` are blanked for every arm, session summaries are absent from
prepared data altogether:

| arm                          | may read                     | sessions blanked             |
|------------------------------|------------------------------|------------------------------|
| training: per-user, unified, | train (learning), val (early | test, cold_start_profile,    |
|   hybrid, cluster, prefix    |   stopping)                  |   cold_start                 |
| retrieval memory (on test)   | train; the answered turn's   | val, test (but the answered  |
|                              |   own context                |   turns), both cold-start    |
| merge (new users)            | train (trained users),       | val, test, cold_start (the   |
|                              |   cold_start_profile (new)   |   evaluated sessions)        |
| preference probe inputs      | routines' triggers (its      | val, test, both cold-start;  |
|                              |   question), train (memory)  |   routines' actions (answer) |
| probe of a profile arm       | routines' triggers, train    | val, test, both cold-start;  |
|   (its profile lines)        |   (the mined profile)        |   routines' actions (answer) |
| profile / distilled training | as training; profiles mined  | as training                  |
|   (profile line, distilled)  |   from train only            |                              |
| mined profiles (base model   | train (returning users) or   | every other split            |
|   and new-user profile arms) |   cold_start_profile (new)   |                              |
| mined profile answering      | the profile (mined from      | val, test (but the answered  |
|   alone (`mined-profile`)    |   train) and the answered    |   sessions' context), both   |
|                              |   session's context (`meta`) |   cold-start                 |

Every registered arm (`adaptcommand.arms`) declares what it reads (`Arm.reads`);
`test_every_registered_arm_reads_only_guarded_splits` ties each to a row above.

A new arm adds a row here and a test that calls `blank_data` with its own blanked splits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptcommand.arms import merged
from adaptcommand.data.io import load_split, load_splits
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.splits import SplitConfig
from adaptcommand.data.synth import synthesize
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.probe import load_routines, probe_items
from adaptcommand.evaluation.runs import Scope, retrieval_prompts
from adaptcommand.evaluation.turns import select_turns
from leak_guard import assert_no_summaries, assert_same_files, blank_data

TRAINING_BLANKS = ("test", "cold_start_profile", "cold_start")
MEMORY_BLANKS = ("val", "test", "cold_start_profile", "cold_start")
MERGE_BLANKS = ("val", "test", "cold_start")
TINY = {"model.name": "tiny-random", "optimizer.epochs": 1, "optimizer.batch_size": 4,
        "data.max_length": 96, "early_stopping.patience": 1, "prompt.max_context_messages": 1,
        "adapter.dropout": 0.0}


@pytest.fixture(autouse=True)
def single_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 trained personas x 8 sessions (5 train, 1 val, 2 test) and one held-out new user
    (2 profile sessions, 3 evaluated)."""
    root = tmp_path_factory.mktemp("leak")
    synthesize(5, 8, 0, root / "raw")
    prepare_from_source(root / "raw", root / "data", SplitConfig(
        cold_start_personas=1, cold_start_profile_sessions=2, cold_start_sessions=3))
    return root / "data"


def test_blanking_changes_what_it_should_and_keeps_the_structure(data: Path,
                                                                 tmp_path: Path) -> None:
    blank = blank_data(data, tmp_path / "blank", splits=TRAINING_BLANKS)
    assert_no_summaries(data)
    assert load_splits(blank) == load_splits(data)
    for split in ("train", "val"):
        assert load_split(blank, split) != load_split(data, split)  # character, routines
        for before, after in zip(load_split(data, split).values(),
                                 load_split(blank, split).values(), strict=True):
            assert [d.messages for d in before] == [d.messages for d in after]
    for split in TRAINING_BLANKS:
        for before, after in zip(load_split(data, split).values(),
                                 load_split(blank, split).values(), strict=True):
            assert [[m.role for m in d.messages] for d in before] == \
                [[m.role for m in d.messages] for d in after]
            assert all(a.messages != b.messages for a, b in zip(before, after, strict=True))


def _train(strategy: str, data: Path, out: Path, **kwargs: object) -> Path:
    from adaptcommand.training.config import TrainingConfig, method_overrides
    from adaptcommand.training.recipes import run_training

    overrides = kwargs.pop("overrides", {})
    method = overrides.get("adapter.method", "lora")  # TINY's LoRA fields: not for a prefix
    config = TrainingConfig().updated(method_overrides(TINY | overrides, method))
    run_training(strategy, config, data, out, show_progress=False, **kwargs)
    return out


@pytest.fixture(scope="module")
def unified(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hybrid arm's starting point, trained once on the original data."""
    return _train("unified", data, tmp_path_factory.mktemp("unified")) / "unified"


@pytest.mark.parametrize(("strategy", "overrides"), [
    ("per-user", {}), ("unified", {}), ("hybrid", {}), ("cluster", {"cluster.k": 2}),
    ("per-user", {"adapter.method": "prefix", "adapter.num_virtual_tokens": 4}),
    ("per-user", {"prompt.profile": "line", "prompt.context_line": True}),
    ("per-user", {"data.distill_examples_per_routine": 2, "prompt.context_line": True}),
    ("unified", {"data.distill_examples_per_routine": 2, "prompt.profile": "line",
                 "prompt.context_line": True}),
    ("hybrid", {"data.distill_examples_per_routine": 2, "prompt.profile": "line",
                "prompt.context_line": True}),
    ("unified", {"data.distill_examples_per_routine": 2, "prompt.profile": "line",
                 "prompt.context_line": True, "data.skip_known_questions": True}),
    ("hybrid", {"data.distill_examples_per_routine": 8, "optimizer.learning_rate": 3e-3,
                "prompt.context_line": True}),
], ids=["per-user", "unified", "hybrid", "cluster", "prefix", "profile", "distilled",
        "profile+distilled", "study-profile+hybrid", "study-profile+unified",
        "study-distilled-hybrid"])
def test_training_reads_only_train_and_val(strategy: str, overrides: dict, data: Path,
                                           unified: Path, tmp_path: Path) -> None:
    blank = blank_data(data, tmp_path / "blank", splits=TRAINING_BLANKS)
    init = {"init_from": unified} if strategy == "hybrid" else {}
    runs = [_train(strategy, source, tmp_path / name, overrides=overrides, **init)
            for name, source in (("original", data), ("blanked", blank))]
    names = assert_same_files(*runs, "*/adapter_model.safetensors")
    assert len(names) == {"unified": 1, "hybrid": 4, "cluster": 2}.get(strategy, 4)
    if "prompt.profile" in overrides or "data.distill_examples_per_routine" in overrides:
        assert len(assert_same_files(*runs, "*/profile.json")) == 4
    if strategy == "cluster":
        first, second = (json.loads((run / "clusters.json").read_text()) for run in runs)
        assert first["assignments"] == second["assignments"]


def test_retrieval_memory_reads_only_the_train_split(data: Path, tmp_path: Path) -> None:
    blank = blank_data(data, tmp_path / "blank", splits=MEMORY_BLANKS)
    config = EvalConfig()
    turns = select_turns(load_split(data, "test"), 0)  # the answered turns, as eval reads them
    prompts = [retrieval_prompts(Scope(data=source), config, 3)(turns) for source in (data, blank)]
    assert prompts[0] == prompts[1]
    assert all(prompt and "Earlier exchanges" in prompt for prompt in prompts[0])


def _hash_embed(texts: list[str]) -> np.ndarray:
    """A stand-in encoder that any change of a text changes: unit vectors from SHA-256."""
    rows = [np.frombuffer(hashlib.sha256(t.encode()).digest(), np.uint8).astype(float) - 127.5
            for t in texts]
    matrix = np.array(rows)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_merge_profiles_never_read_an_evaluated_session(data: Path, tmp_path: Path) -> None:
    blank = blank_data(data, tmp_path / "blank", splits=MERGE_BLANKS)
    splits = load_splits(data)
    targets = [pid for pid, entry in splits.items() if entry["cold_start"]]
    trained = [pid for pid, entry in splits.items() if entry["train"]]
    read: list[str] = []

    def spy(texts: list[str]) -> np.ndarray:
        read.extend(texts)
        return _hash_embed(texts)

    plans = [merged.plan_merges(source, splits, trained, targets, 2, spy)
             for source in (data, blank)]
    assert plans[0] == plans[1]
    evaluated = {m.text for dialogues in load_split(data, "cold_start").values()
                 for d in dialogues for m in d.messages}
    profile = {m.text for pid in targets for d in load_split(data, "cold_start_profile")[pid]
               for m in d.messages if m.role == "user"}
    assert not evaluated & set(read)
    assert profile & set(read)  # the new user's profile sessions are what it is compared by


def test_probe_inputs_are_the_trigger_contexts_only(data: Path, tmp_path: Path) -> None:
    blank = blank_data(data, tmp_path / "blank", splits=MEMORY_BLANKS, keep_triggers=True)
    items = [probe_items(load_routines(Scope(data=source), "test")) for source in (data, blank)]
    assert [(i.persona_id, i.routine_index, i.prompt) for i in items[0]] == \
        [(i.persona_id, i.routine_index, i.prompt) for i in items[1]]
    assert items[0][0].actions != items[1][0].actions  # the answer key was replaced
    config = EvalConfig()
    memories = [retrieval_prompts(Scope(data=source), config, 3)([i.as_turn() for i in found])
                for source, found in zip((data, blank), items, strict=True)]
    assert memories[0] == memories[1]


def test_probe_profile_lines_read_the_mined_profile_only(data: Path, tmp_path: Path) -> None:
    from adaptcommand.evaluation.probe import probe_profile_texts
    from adaptcommand.routines.mining import mine_profiles

    blank = blank_data(data, tmp_path / "blank", splits=MEMORY_BLANKS, keep_triggers=True)
    settings = EvalConfig.model_validate({"prompt": {"profile": "line", "context_line": True}})
    texts = []
    for source in (data, blank):
        items = probe_items(load_routines(Scope(data=source), "test"))
        profiles = mine_profiles(load_split(source, "train"))
        texts.append(probe_profile_texts(settings, items, profiles)(
            [item.as_turn() for item in items]))
    assert texts[0] == texts[1]
    assert any(text is not None and "User profile" in text.text for text in texts[0])


def test_mined_profile_answers_read_the_profile_and_session_context_only(
        data: Path, tmp_path: Path) -> None:
    """The `mined-profile` arm: every test message (the turns' context and reference) and every
    other split blanked, the profile mined from train, and the replies are the same."""
    from adaptcommand.arms.profile import session_metas
    from adaptcommand.arms.profile_answer import NO_ANSWER, profile_predictor
    from adaptcommand.routines.mining import mine_profiles

    blank = blank_data(data, tmp_path / "blank", splits=MEMORY_BLANKS)
    replies = []
    for source in (data, blank):
        profiles = mine_profiles(load_split(source, "train"))
        turns = select_turns(load_split(source, "test"), 0)
        predict = profile_predictor(lambda key, p=profiles: p.get(key[0]),
                                    session_metas(Scope(data=source), "test"))
        replies.append(predict(turns))
    assert replies[0] == replies[1]
    assert any(reply != NO_ANSWER for reply in replies[0])


PROFILE_SPLITS = ("train", "cold_start_profile")


@pytest.mark.parametrize("split", PROFILE_SPLITS)
def test_mined_profiles_read_only_their_split(split: str, data: Path, tmp_path: Path) -> None:
    """The profiles a base-model or new-user profile arm renders (the demo's `mine` stage)."""
    from adaptcommand.routines.run import mine_data

    others = [s for s in ("train", "val", "test", "cold_start_profile", "cold_start")
              if s != split]
    blank = blank_data(data, tmp_path / "blank", splits=others)
    for name, source in (("original", data), ("blanked", blank)):
        mine_data(source, tmp_path / name, split=split)
    assert_same_files(tmp_path / "original", tmp_path / "blanked", "profiles.json")


def test_every_registered_arm_reads_only_guarded_splits() -> None:
    """Each arm of the registry reads only splits a test above guards: training arms train and
    val, memory train, new-user arms also cold_start_profile (merge, mined profiles), and an
    arm whose prompts carry a profile either trains with it (profiles mined from train) or
    mines one from PROFILE_SPLITS (or, for new users, grows it from the sessions seen before
    each evaluated one: tests/test_growing_profile.py's spy)."""
    from adaptcommand.arms import ARMS, REGISTRY
    from adaptcommand.arms.arm import GROWING

    allowed = {"test": {"train", "val"}, "cold_start": {"train", "val", "cold_start_profile"}}
    for arm in ARMS:
        assert arm.reads() <= allowed[arm.split], arm.key
        if arm.uses_profile:
            own = arm.train or (arm.adapters_of and arm.split == "test"
                                and REGISTRY[arm.adapters_of].uses_profile)
            assert own or arm.profiles_from in (*PROFILE_SPLITS, GROWING), arm.key
        if arm.profiles_from:
            assert arm.profiles_from in (("train",) if arm.split == "test"
                                         else ("cold_start_profile", GROWING)), arm.key
