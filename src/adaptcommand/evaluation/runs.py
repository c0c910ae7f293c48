"""One evaluation arm from user-level choices: config, turns, model and adapters, results.

`baseline` and `eval` (and the demo) share all of this; they differ only in the adapters. The
preference probe reuses the arm setup, so it generates exactly as the evaluation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptcommand.arms.memory import RetrievalMemory, memory_system_prompts
from adaptcommand.arms.profile import (
    PROFILE_ARM_SUFFIX,
    GrowingProfiles,
    check_growing,
    eval_profile_texts,
    growing_profiles,
    uses_profile_prompt,
)
from adaptcommand.config import load_config, set_dotted
from adaptcommand.data.io import load_split, read_dialogues_file
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.harness import run_evaluation
from adaptcommand.evaluation.predictor import (
    Predictor,
    ProfileTexts,
    SystemPrompts,
    make_predictor,
)
from adaptcommand.evaluation.training_info import trained_with, training_cost
from adaptcommand.evaluation.turns import Turn, group_by_persona, select_turns
from adaptcommand.fileio import write_json_atomic
from adaptcommand.identity import data_fingerprint, file_digest, profiles_identity
from adaptcommand.models.adapters import adapter_router, attach_adapters, discover_adapters
from adaptcommand.models.loading import load_model

MEMORY_SUFFIX = "+memory"


@dataclass(frozen=True)
class Scope:
    """Which turns a run evaluates, as the user chose them on the command line."""

    data: Path | None = None
    dialogues: Path | None = None
    personas: list[str] | None = None
    max_examples: int | None = None


def resolve_config(path: Path | None, overrides: dict[str, Any]) -> EvalConfig:
    """The config file (or the built-in reference defaults) with dotted overrides applied."""
    if path is not None:
        return load_config(path, EvalConfig, overrides)
    raw: dict[str, Any] = {}
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    return EvalConfig.model_validate(raw)


def load_turns(scope: Scope, config: EvalConfig) -> list[Turn]:
    """The turns of `scope`: a split of a prepared data directory, or a whole cleaned JSONL."""
    if (scope.data is None) == (scope.dialogues is None):
        raise AdaptCommandError("give exactly one of --data DIR or --dialogues FILE")
    if scope.dialogues is not None:
        by_persona = group_by_persona(read_dialogues_file(scope.dialogues))
    else:
        by_persona = load_split(scope.data, config.evaluation.split)
    return select_turns(
        by_persona, config.evaluation.skip_assistant_turns, scope.personas, scope.max_examples
    )


def scope_fingerprint(scope: Scope) -> str:
    """The fingerprint of the evaluated files, so results name exactly the data they were
    computed on: the cleaned JSONL, or the data directory's dialogues and splits."""
    if scope.dialogues is not None:
        return file_digest(scope.dialogues)
    return data_fingerprint(scope.data)


def run_info(scope: Scope, arm: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What identifies a run besides its config: the arm, the data and the chosen scope."""
    return {
        "arm": arm,
        "data": str(scope.data or scope.dialogues),
        "data_fingerprint": scope_fingerprint(scope),
        "personas": scope.personas,
        "max_examples": scope.max_examples,
        **(extra or {}),
    }


def adapter_settings(
    adapters: Path, overrides: dict[str, Any], config_path: Path | None
) -> tuple[EvalConfig, str]:
    """(eval config, default arm name) of an adapter run: the base model and prompt are the ones
    the adapters were trained with unless overridden; the arm is named after the strategy."""
    strategy, trained = trained_with(adapters)
    return resolve_config(config_path, {**trained, **overrides}), strategy


def arm_name(arm: str | None, default: str, retrieval_k: int = 0,
             profile: bool = False) -> str:
    """The user's --arm, else `default`, marked as a memory arm when retrieval is on and as a
    profile arm when its prompts carry a profile/context text."""
    suffixes = (MEMORY_SUFFIX if retrieval_k else "") + (PROFILE_ARM_SUFFIX if profile else "")
    return arm or default + suffixes


def retrieval_prompts(scope: Scope, settings: EvalConfig, retrieval_k: int) -> SystemPrompts:
    """System prompts with each turn's k most similar exchanges from its persona's train split."""
    if scope.data is None:
        raise AdaptCommandError("--retrieval-k needs --data: the memory is each persona's train "
                                "split of a prepared data directory")
    memory = RetrievalMemory(load_split(scope.data, "train"), retrieval_k,
                             settings.evaluation.embedding_batch_size)
    return memory_system_prompts(memory, settings.prompt.system_prompt)


@dataclass(frozen=True)
class ArmSetup:
    """The model of an arm, ready to predict, and what its run records about it."""

    predictor: Predictor
    adapters: dict[str, Path]
    info: dict[str, Any]


def setup_arm(
    settings: EvalConfig, scope: Scope, adapters: Path | None = None, retrieval_k: int = 0,
    profiles: ProfileTexts | None = None,
) -> ArmSetup:
    """The base model, or the adapters in `adapters` routed per persona (own adapter, else the
    unified adapter, else the base model), plus retrieved memories when `retrieval_k` > 0 and
    each turn's profile/context text when `profiles` gives one."""
    if profiles is None and uses_profile_prompt(settings):
        raise AdaptCommandError("this arm's prompts carry a profile/context line "
                                "(prompt.profile / prompt.context_line): pass each turn's text "
                                "(arms.profile.profile_texts)")
    found = discover_adapters(adapters) if adapters is not None else {}
    prompts = retrieval_prompts(scope, settings, retrieval_k) if retrieval_k else None
    loaded = load_model(settings.model.name, device=settings.model.device,
                        dtype=settings.model.dtype)
    router = None
    info: dict[str, Any] = {}
    if found:
        loaded.model = attach_adapters(loaded.model, found)
        own, fallback = adapter_router(found)
        router = lambda persona: own.get(persona, fallback)  # noqa: E731
        info = {"adapters": str(adapters), "n_adapters": len(found)}
    if retrieval_k:
        info["retrieval_k"] = retrieval_k  # absent when off, so earlier runs still resume
    return ArmSetup(make_predictor(loaded, settings, router, prompts, profiles), found, info)


def turns_and_profile_texts(
    settings: EvalConfig, scope: Scope, adapters: Path | None, profiles_file: Path | None
) -> tuple[list[Turn], ProfileTexts | None, GrowingProfiles | None]:
    """The turns an arm is evaluated on and their profile/context texts: a growing profile
    (new users) keeps only sessions with enough seen before them, and mines each one's profile
    from those."""
    turns = load_turns(scope, settings)
    growing = None
    if settings.profile.source == "growing":
        check_growing(settings, scope, profiles_file)
        growing = growing_profiles(scope.data, settings.profile.min_seen_sessions)
        turns = [turn for turn in turns if (turn.persona_id, turn.session_id) in growing.seen]
    return turns, eval_profile_texts(settings, scope, adapters, profiles_file, growing), growing


def evaluate_arm(
    settings: EvalConfig,
    scope: Scope,
    out: Path,
    arm: str,
    *,
    adapters: Path | None = None,
    retrieval_k: int = 0,
    force: bool = False,
    show_progress: bool = True,
    profiles_file: Path | None = None,
) -> dict[str, Any]:
    """Evaluate the base model or `adapters` (see `setup_arm`) and write the run to `out`;
    profile arms read the users' profiles from `profiles_file`, else next to the adapters, or
    mine them session by session (`profile.source=growing`, new users)."""
    if retrieval_k and settings.evaluation.split == "train":
        raise AdaptCommandError("--retrieval-k retrieves from the train split, so it cannot "
                                "evaluate the train split (the turn would retrieve itself)")
    turns, texts, growing = turns_and_profile_texts(settings, scope, adapters, profiles_file)
    arm_setup = setup_arm(settings, scope, adapters, retrieval_k, texts)
    info = {**arm_setup.info, **profiles_identity(profiles_file)}
    results = run_evaluation(turns, arm_setup.predictor, settings, out,
                             run_info(scope, arm, info), force=force,
                             show_progress=show_progress,
                             breakdowns=growing.breakdowns if growing else None)
    if arm_setup.adapters:
        write_json_atomic(out / "training_cost.json", training_cost(adapters, arm_setup.adapters))
    return results
