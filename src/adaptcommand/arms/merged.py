"""Merged LoRA adapters for users without training data: a weighted sum of the adapters of the
trained users whose first messages read most like theirs.

Similarity. A persona's profile is the mean all-MiniLM-L6-v2 embedding of the first user message
of each of its first PROFILE_SESSIONS sessions: the train split for a trained user, the
cold_start_profile split for a new one (never its evaluated cold_start sessions: an answer must
not come from an adapter chosen by reading the session it answers); user messages only, never
assistant replies (those are the model's, not the user's). Profiles are compared by cosine and
the k most similar trained users are merged (ties broken by persona id, so the choice is
deterministic).

Weights. Similarities clipped at 0 and normalised to sum 1: a more similar user counts more, an
opposite one (negative cosine) not at all, and the merge is a convex combination, so its delta
stays on the scale of one trained adapter. If no similarity is positive the k users count
equally.

Merge. PEFT's `add_weighted_adapter(..., combination_type="cat")` (peft 0.21) stacks
`w_i * scaling_i * A_i` and `B_i` into one adapter of rank `sum r_i` with `lora_alpha = rank`,
i.e. scaling 1, so each layer's delta `B A` is exactly `sum_i w_i * scaling_i * B_i A_i`, with no
SVD truncation. (With k = 1 PEFT switches to "linear", `sqrt(w s) B` and `sqrt(w s) A` at scaling
1: exact too.) rsLoRA and DoRA adapters would not be merged exactly this way and are refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaptcommand import __version__
from adaptcommand.data.io import (
    SPLITS_FILE,
    load_dialogues,
    load_splits,
    select_split,
)
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.errors import AdaptCommandError
from adaptcommand.fileio import write_json_atomic
from adaptcommand.identity import (
    MANIFEST_FILE,
    SUMMARY_FILE,
    check_resume,
    data_fingerprint,
    library_versions,
    read_manifest,
    write_manifest,
)
from adaptcommand.models.adapters import UNIFIED, discover_adapters, read_record

STRATEGY = "merged"
PROFILE_SESSIONS = 3
COMBINATION = "cat"
MERGE_SLOT = "__merging__"  # PEFT name of the adapter being built; never a persona id
# Manifest fields a rerun into the same OUT must match, with the words the refusal uses.
CHECKED_FIELDS = {"strategy": "strategy", "base_model": "base model", "config_hash": "config",
                  "source_adapters": "source adapters", "data_fingerprint": "data", "k": "k"}


@dataclass(frozen=True)
class MergePlan:
    """One new user's adapter: which trained users it is merged from, and how much of each."""

    target: str
    sources: list[str]
    similarities: list[float]
    weights: list[float]


def first_user_messages(dialogues: Sequence[CleanDialogue],
                        n_sessions: int = PROFILE_SESSIONS) -> list[str]:
    """The first user message of each of the first `n_sessions` sessions (a session without
    one is skipped)."""
    texts = []
    for dialogue in dialogues[:n_sessions]:
        text = next((m.text for m in dialogue.messages if m.role == "user"), None)
        if text:
            texts.append(text)
    return texts


def persona_profiles(
    by_persona: Mapping[str, Sequence[CleanDialogue]],
    encode: Callable[[list[str]], np.ndarray],
) -> dict[str, np.ndarray]:
    """persona_id -> unit mean embedding of its first user messages, encoded in one pass."""
    texts = {pid: first_user_messages(dialogues) for pid, dialogues in by_persona.items()}
    empty = [pid for pid, persona_texts in texts.items() if not persona_texts]
    if empty:
        raise AdaptCommandError(f"no user message in the first {PROFILE_SESSIONS} sessions of "
                                f"{', '.join(empty)} to compare users by")
    vectors = encode([text for persona_texts in texts.values() for text in persona_texts])
    profiles: dict[str, np.ndarray] = {}
    start = 0
    for pid, persona_texts in texts.items():
        mean = vectors[start : start + len(persona_texts)].mean(axis=0)
        start += len(persona_texts)
        profiles[pid] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return profiles


def merge_weights(similarities: Sequence[float]) -> list[float]:
    """Similarities clipped at 0 and normalised to sum 1; equal weights if none is positive."""
    clipped = np.clip(np.asarray(similarities, dtype=np.float64), 0.0, None)
    if clipped.sum() <= 0:
        return [1.0 / len(similarities)] * len(similarities)
    return [float(w) for w in clipped / clipped.sum()]


def plan_merge(target: str, profile: np.ndarray, trained: Mapping[str, np.ndarray],
               k: int) -> MergePlan:
    """The `k` trained users most similar to `target` (never itself) and their weights."""
    candidates = [pid for pid in trained if pid != target]
    if k > len(candidates):
        raise AdaptCommandError(f"--k {k} is larger than the {len(candidates)} trained users "
                                f"available to merge for {target}")
    similarities = {pid: float(trained[pid] @ profile) for pid in candidates}
    nearest = sorted(candidates, key=lambda pid: (-similarities[pid], pid))[:k]
    chosen = [similarities[pid] for pid in nearest]
    return MergePlan(target, nearest, chosen, merge_weights(chosen))


def merge_adapters(
    adapters_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    k: int = 3,
    personas: list[str] | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write a merged adapter `OUT/<persona>/` for each target persona (default: every persona
    of the cold_start split), plus OUT/manifest.json and OUT/training_summary.json; returns the
    summary. `embed` (texts -> unit vectors) defaults to the evaluation's MiniLM encoder.

    The merge recipe: source run's manifest -> trained users and targets -> each target's plan
    (most similar trained users, weights) -> resume check, manifest -> merge and save -> summary.
    """
    adapters_dir, data_dir, out_dir = Path(adapters_dir), Path(data_dir), Path(out_dir)
    if k < 1:
        raise AdaptCommandError("--k must be at least 1")
    splits = load_splits(data_dir)
    source_manifest = _source_manifest(adapters_dir)
    manifest = build_manifest(source_manifest, adapters_dir, data_dir, k)
    _check_same_data(source_manifest, manifest, adapters_dir)
    found = discover_adapters(adapters_dir)
    trained = _trained(found, splits, adapters_dir, data_dir)
    targets = _targets(splits, personas, data_dir)
    plans = plan_merges(data_dir, splits, trained, targets, k, embed)
    check_resume(out_dir / MANIFEST_FILE, manifest, "use another --out", CHECKED_FIELDS)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(out_dir, manifest)
    save_merged_adapters(manifest["base_model"], found, plans, out_dir)
    return write_summary(out_dir, manifest)


def _trained(found: Mapping[str, Path], splits: Mapping[str, Mapping[str, list[int]]],
             adapters_dir: Path, data_dir: Path) -> list[str]:
    """The source adapters that may be merged: per-user ones of personas with train sessions."""
    trained = [name for name in found if name != UNIFIED and splits.get(name, {}).get("train")]
    if not trained:
        raise AdaptCommandError(f"no trained per-user adapters in {adapters_dir} (expected "
                                f"<persona_id>/ adapter directories of personas with train "
                                f"sessions in {data_dir / SPLITS_FILE}, from a per-user or "
                                "hybrid run)")
    return trained


def _targets(splits: Mapping[str, Mapping[str, list[int]]], personas: list[str] | None,
             data_dir: Path) -> list[str]:
    if personas:
        unknown = [pid for pid in personas if pid not in splits]
        if unknown:
            raise AdaptCommandError(f"unknown persona(s) {', '.join(unknown)}: not in "
                                    f"{data_dir / SPLITS_FILE}")
        return list(dict.fromkeys(personas))
    held_out = [pid for pid, entry in splits.items() if entry["cold_start_profile"]]
    if not held_out:
        raise AdaptCommandError(f"{data_dir / SPLITS_FILE} has no cold_start_profile split; "
                                "prepare the data with --cold-start-personas N, or name "
                                "--personas")
    return held_out


def plan_merges(data_dir: Path, splits: dict[str, dict[str, list[int]]], trained: list[str],
           targets: list[str], k: int, embed: Callable[[list[str]], np.ndarray] | None
           ) -> list[MergePlan]:
    """Profiles of trained users (train split) and targets (their cold_start_profile split,
    else their train split; never a cold_start session), then each target's plan."""
    if embed is None:
        from adaptcommand.evaluation.embeddings import encode

        embed = encode
    dialogues = load_dialogues(data_dir)
    train = select_split(dialogues, splits, "train")
    profile = select_split(dialogues, splits, "cold_start_profile")
    profiles = persona_profiles(
        {**{pid: train[pid] for pid in trained},
         **{pid: profile[pid] or train[pid] for pid in targets}}, embed)
    trained_profiles = {pid: profiles[pid] for pid in trained}
    return [plan_merge(pid, profiles[pid], trained_profiles, k) for pid in targets]


def save_merged_adapters(base_model: str, found: Mapping[str, Path], plans: Sequence[MergePlan],
                    out_dir: Path) -> None:
    """Load the base model once with every needed source adapter, then build, save and drop
    one merged adapter at a time (CPU, float32: the merge is small and must be exact)."""
    from peft.utils import get_peft_model_state_dict

    from adaptcommand.models.adapters import attach_adapters
    from adaptcommand.models.loading import load_model
    from adaptcommand.training.export import save_adapter

    needed = list(dict.fromkeys(pid for plan in plans for pid in plan.sources))
    loaded = load_model(base_model, device="cpu", dtype="float32")
    model = attach_adapters(loaded.model, {pid: found[pid] for pid in needed})
    for name in needed:
        config = model.peft_config[name]
        if getattr(config, "use_rslora", False) or getattr(config, "use_dora", False):
            raise AdaptCommandError(f"{found[name]}: rsLoRA/DoRA adapters cannot be merged "
                                    "exactly; only plain LoRA adapters are supported")
    for plan in plans:
        started = time.perf_counter()
        model.add_weighted_adapter(plan.sources, plan.weights, MERGE_SLOT,
                                   combination_type=COMBINATION)
        state = get_peft_model_state_dict(model, adapter_name=MERGE_SLOT,
                                          save_embedding_layers=False)
        record = {"adapter": plan.target, "personas": [plan.target], "strategy": STRATEGY,
                  "merged_from": plan.sources, "weights": plan.weights,
                  "similarities": plan.similarities, "combination": COMBINATION}
        save_adapter(out_dir / plan.target, state, model.peft_config[MERGE_SLOT],
                     {**record, "seconds": round(time.perf_counter() - started, 3)})
        model.delete_adapter(MERGE_SLOT)


def _source_manifest(adapters_dir: Path) -> dict[str, Any]:
    manifest = read_manifest(adapters_dir)
    if manifest is None:
        raise AdaptCommandError(f"{adapters_dir / MANIFEST_FILE} not found: merging needs "
                                "adapters written by `adaptcommand train` (its manifest names "
                                "the base model)")
    return manifest


def build_manifest(source: Mapping[str, Any], adapters_dir: Path, data_dir: Path,
                   k: int) -> dict[str, Any]:
    """OUT/manifest.json: the source run's base model and config (so `eval` uses the same model
    and prompt), and what the merge was made from."""
    if not source.get("base_model"):
        raise AdaptCommandError(f"{adapters_dir / MANIFEST_FILE} names no base_model")
    return {
        "strategy": STRATEGY,
        "base_model": source["base_model"],
        "config": source.get("config", {}),
        "config_hash": source.get("config_hash"),
        "source_adapters": str(adapters_dir),
        "source_strategy": source.get("strategy"),
        "data_dir": str(data_dir),
        "data_fingerprint": data_fingerprint(data_dir),
        "k": k,
        "profile_sessions": PROFILE_SESSIONS,
        "weights": "cosine similarity clipped at 0, normalised to sum 1",
        "combination": COMBINATION,
        "package_version": __version__,
        "library_versions": library_versions(),
    }


def _check_same_data(source: Mapping[str, Any], manifest: Mapping[str, Any],
                     adapters_dir: Path) -> None:
    """Adapters trained on other data may have seen the held-out users: refuse them."""
    trained_on = source.get("data_fingerprint")
    if trained_on and trained_on != manifest["data_fingerprint"]:
        raise AdaptCommandError(f"{adapters_dir} was trained on other data than "
                                f"{manifest['data_dir']} (data fingerprints differ), so its "
                                "adapters may have learned from the users held out here")


def write_summary(out_dir: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """OUT/training_summary.json in the training runner's shape, from every merged adapter's
    record in OUT; `seconds` is the merging time (the source adapters' training is in their
    own run's summary)."""
    records = {child.name: record for child in sorted(out_dir.iterdir())
               if child.is_dir() and (record := read_record(child)) is not None}
    seconds = sum(r["seconds"] for r in records.values())
    summary = {
        "strategy": STRATEGY,
        "base_model": manifest["base_model"],
        "adapters_planned": len(records),
        "adapters_done": len(records),
        "tokens": 0,
        "seconds": round(seconds, 3),
        "tokens_per_second": None,
        "adapters": records,
    }
    write_json_atomic(out_dir / SUMMARY_FILE, summary)
    return summary
