"""Every arm the demo and the study know, by name, with a one-line description and a group.

The demo's plans (and so the order of arms in its report), `adaptcommand demo --list-arms`,
`demo --help` and the report's arm descriptions all read this one table. A new arm is one
entry here (plus its row in the leak-guard matrix of `tests/test_leak_guard.py`).
"""

from __future__ import annotations

from collections.abc import Iterable

from adaptcommand.arms.arm import COLD_START, GROUPS, GROWING, Arm
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.prompting import ProfileOptions

# Profile arms state the session's context and the user's mined routine for it in the first user
# message (the placement the issue-15 measurement found a small model learns to use).
PROFILE_PROMPT = ProfileOptions(profile="line", context_line=True)
# Distilled arms: the context sentence only; what the user likes must come from the adapter.
CONTEXT_PROMPT = ProfileOptions(context_line=True)
DISTILLED = {"data.distill_examples_per_routine": 6}

ARMS: tuple[Arm, ...] = (
    Arm("baseline", "The base model, no adaptation.", "core"),
    Arm("unified", "One LoRA adapter shared by every user.", "core", train="unified"),
    Arm("per-user", "One LoRA adapter per user, trained on that user's sessions only.", "core",
        train="per-user"),
    Arm("hybrid", "Per-user LoRA adapters trained on top of the unified one.", "core",
        train="hybrid", init_from="unified"),
    Arm("memory", "The base model with the user's 3 most similar train exchanges retrieved "
        "into the system prompt.", "memory", retrieval_k=3),
    Arm("per-user+memory", "Per-user adapters plus the retrieved exchanges (k=3).", "memory",
        adapters_of="per-user", retrieval_k=3),
    Arm("oppu", "OPPU recipe: hybrid adapters (shared + per-user) plus retrieval memory (k=3).",
        "memory", adapters_of="hybrid", retrieval_k=3),
    Arm("cluster", "One LoRA adapter per behaviour cluster of users.", "clusters",
        train="cluster"),
    Arm("prefix-unified", "One prefix-tuning adapter shared by every user.", "prefix",
        train="unified", method="prefix"),
    Arm("prefix-per-user", "One prefix-tuning adapter per user.", "prefix", train="per-user",
        method="prefix"),
    Arm("profile", "The base model with the session's context and the user's routine for it, "
        "mined from the train split, in one line of the prompt (the control).", "profile",
        prompt=PROFILE_PROMPT, profiles_from="train"),
    Arm("mined-profile", "No language model: each turn answered with the settings the user's "
        "profile (mined from the train split) states for the session's context, the routine "
        "for it plus the usual settings: what a profile line holds, the profile arms' recall "
        "ceiling.",
        "profile", profiles_from="train", language_model=False),
    Arm("profile+unified", "Unified adapter trained with each session's profile line in the "
        "prompt, evaluated with it.", "profile", train="unified", prompt=PROFILE_PROMPT),
    Arm("profile+distilled", "Unified adapter trained with the profile line and the distilled "
        "examples (each mined routine, or one device of it, asked for and answered), evaluated "
        "with the line.",
        "profile", train="unified", prompt=PROFILE_PROMPT, training=DISTILLED),
    Arm("profile+per-user", "Per-user adapters trained and evaluated with the profile line.",
        "profile", train="per-user", prompt=PROFILE_PROMPT),
    Arm("profile+hybrid", "Per-user adapters on top of the profile unified adapter, trained "
        "and evaluated with the profile line.", "profile", train="hybrid",
        init_from="profile+unified", prompt=PROFILE_PROMPT),
    Arm("distilled-per-user", "Per-user adapters trained on the user's sessions plus examples "
        "made from their mined routines; no profile at evaluation (context sentence only).",
        "profile", train="per-user", prompt=CONTEXT_PROMPT, training=DISTILLED),
    Arm("distilled-hybrid", "Distilled per-user adapters on top of the unified adapter; no "
        "profile at evaluation (context sentence only).", "profile", train="hybrid",
        init_from="unified", prompt=CONTEXT_PROMPT, training=DISTILLED),
    Arm("baseline", "New users: the base model.", "cold-start", split=COLD_START),
    Arm("unified", "New users: the unified adapter.", "cold-start", adapters_of="unified",
        split=COLD_START),
    Arm("merged", "New users: the per-user adapters of the 3 most similar trained users, "
        "merged.", "cold-start", merge_from="per-user", split=COLD_START),
    Arm("profile", "New users: the base model with a profile line mined, before each "
        "session, from the sessions seen so far.", "cold-start", prompt=PROFILE_PROMPT,
        profiles_from=GROWING, split=COLD_START),
    Arm("mined-profile", "New users: no language model, each turn answered with what the "
        "profile mined from the sessions seen so far states for the session's context.",
        "cold-start", profiles_from=GROWING, split=COLD_START, language_model=False),
    Arm("profile+unified", "New users: the profile unified adapter with a profile line mined "
        "from the sessions seen so far.", "cold-start", adapters_of="profile+unified",
        prompt=PROFILE_PROMPT, profiles_from=GROWING, split=COLD_START),
    Arm("merged+profile", "New users: merged profile per-user adapters of the 3 most similar "
        "users, with a profile line mined from the sessions seen so far.", "cold-start",
        merge_from="profile+per-user", prompt=PROFILE_PROMPT, profiles_from=GROWING,
        split=COLD_START),
)
REGISTRY: dict[str, Arm] = {arm.key: arm for arm in ARMS}
assert len(REGISTRY) == len(ARMS), "arm keys must be unique"

CORE = ("baseline", "unified", "per-user", "hybrid")
# `demo --all-arms`: everything the demo compared before the profile arms existed.
ALL_ARMS = (*CORE, "memory", "per-user+memory", "cluster", "prefix-unified", "prefix-per-user",
            "cold_start/baseline", "cold_start/unified", "cold_start/merged")


def get_arm(key: str) -> Arm:
    """The registered arm `key`, or an error listing the known ones."""
    if key not in REGISTRY:
        raise AdaptCommandError(f"unknown arm {key!r}; known arms: {', '.join(REGISTRY)}")
    return REGISTRY[key]


def resolve_arms(keys: Iterable[str]) -> list[Arm]:
    """The arms `keys` in registry order, each with the arms it builds on (the adapters it
    reuses, merges or starts from) added before it."""
    wanted: set[str] = set()

    def add(key: str) -> None:
        arm = get_arm(key)
        wanted.add(key)
        for dependency in (arm.adapters_of, arm.merge_from, arm.init_from):
            if dependency:
                add(dependency)

    for key in keys:
        add(key)
    return [arm for arm in ARMS if arm.key in wanted]


def description(name: str, split: str) -> str | None:
    """The description of the arm run `name` on `split` (None for an unregistered name)."""
    arm = REGISTRY.get(name if split == "test" else f"{split}/{name}")
    return arm.description if arm else None


def list_arms() -> list[tuple[str, str, str]]:
    """(key, group, description) of every arm, grouped in GROUPS order."""
    return [(arm.key, arm.group, arm.description)
            for group in GROUPS for arm in ARMS if arm.group == group]
