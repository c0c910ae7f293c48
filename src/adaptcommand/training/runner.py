"""The shared steps of a training run, from data directory to adapter directories; the
strategies' recipes (`training.recipes`) call them in order: `select_personas` ->
`open_run` (manifest, resume check) -> `train_run` (examples per adapter, `engine.train_loop`
through `train_adapters` for LoRA or `prefix.train_prefix_adapters`, save, summary).

Work is never lost: each adapter directory is written atomically with its training record
inside, and a finished one is skipped when the same command runs again; an adapter still
training resumes from its last epoch-end checkpoint (training.checkpoints). The manifest pins
what the directory was trained with; a different config, data or starting adapter is refused
unless `force`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from adaptcommand import __version__
from adaptcommand.arms.distilled import distilled_for
from adaptcommand.data.io import (
    SPLITS_FILE,
    load_dialogues,
    load_split,
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
    file_digest,
    library_versions,
    read_manifest,
    run_key,
    write_manifest,
)
from adaptcommand.models.adapters import read_record
from adaptcommand.models.loading import load_model
from adaptcommand.models.profile_prompt import (
    asks_for_known_settings,
    profile_text,
    write_persona_profiles,
)
from adaptcommand.models.prompting import ProfileText
from adaptcommand.routines.mining import MiningSettings, mine_profiles
from adaptcommand.routines.profile import UserProfile
from adaptcommand.training.checkpoints import CHECKPOINTS_DIR, Checkpoints
from adaptcommand.training.config import TrainingConfig, config_hash
from adaptcommand.training.engine import AdapterJob, AdapterResult, StepReport, train_adapters
from adaptcommand.training.examples import build_examples, turn_terminator
from adaptcommand.training.export import (
    WEIGHTS_FILE,
    load_adapter,
    lora_config,
    save_adapter,
)
from adaptcommand.training.multi_lora import MultiLora
from adaptcommand.training.prefix import train_prefix_adapters, wrap_prefix
from adaptcommand.training.progress import TrainingProgress

Strategy = Literal["per-user", "unified", "hybrid", "cluster"]
# Manifest fields a resumed run must match, with the words the refusal uses for them.
CHECKED_FIELDS = {"strategy": "strategy", "base_model": "base model", "config_hash": "config",
                  "data_fingerprint": "data", "init_fingerprint": "--init-from adapter",
                  "mining": "profile miner settings"}


@dataclass(frozen=True)
class RunPlan:
    """Everything a worker needs to train its share of a run (picklable, for Ray)."""

    strategy: Strategy
    config: TrainingConfig
    data_dir: Path
    out_dir: Path
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (adapter name, personas it learns from)
    init_from: Path | None
    run_key: str  # hash of the manifest's checked fields, stamped into every adapter record

    @property
    def adapter_names(self) -> list[str]:
        return [name for name, _ in self.groups]

    def personas_of(self, name: str) -> list[str]:
        return list(dict(self.groups)[name])


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out, whatever its strategy."""

    force: bool = False  # retrain into an output directory made with other settings
    executor: Literal["local", "ray"] = "local"
    workers: int | None = None  # Ray workers (default: one per GPU, else one per CPU)
    show_progress: bool = True


def select_personas(data_dir: Path, requested: list[str] | None) -> list[str]:
    """The requested personas, default all that have train sessions (held-out cold-start users
    have none and are never trained on)."""
    available = [pid for pid, entry in load_splits(data_dir).items() if entry["train"]]
    if not requested:
        return available
    unknown = [p for p in requested if p not in available]
    if unknown:
        raise AdaptCommandError(f"unknown or untrainable persona(s) {', '.join(unknown)}: "
                                f"{data_dir / SPLITS_FILE} has {len(available)} personas with "
                                f"train sessions ({', '.join(available[:3])}, ...)")
    return list(dict.fromkeys(requested))


def open_run(strategy: Strategy, config: TrainingConfig, data_dir: Path, out_dir: Path,
             groups: dict[str, list[str]], init_from: Path | None,
             options: RunOptions) -> RunPlan:
    """The run's plan, after checking that `out_dir` (if it holds a run) was made with the same
    settings, and its manifest written."""
    manifest = build_manifest(strategy, config, data_dir, init_from)
    if not options.force:
        manifest["config_hash"] = pinned_config_hash(out_dir, config, manifest["config_hash"])
        check_resume(out_dir / MANIFEST_FILE, manifest, "use another --out, or --force to "
                     "retrain its adapters with the new settings", CHECKED_FIELDS)
    plan = RunPlan(strategy, config, data_dir, out_dir,
                   tuple((name, tuple(members)) for name, members in groups.items()),
                   init_from, run_key({field: manifest[field] for field in CHECKED_FIELDS}))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(out_dir, manifest)
    return plan


def train_run(plan: RunPlan, options: RunOptions) -> dict[str, Any]:
    """Train the plan's adapters not finished yet (here or on Ray workers), keeping the summary
    current as each is saved; then write the personas' profiles if the prompts use them."""
    out_dir = plan.out_dir
    remove_stale_temporaries(out_dir)
    remove_stale_temporaries(out_dir / CHECKPOINTS_DIR)
    finished = finished_records(plan)
    todo = [name for name in plan.adapter_names if name not in finished]
    for name in finished:
        checkpoints(plan).remove(name)  # saved, then killed before its checkpoint went
    with TrainingProgress(len(plan.adapter_names), len(plan.adapter_names) - len(todo),
                          options.show_progress) as progress:

        def on_saved(names: list[str]) -> None:
            summary = write_summary(plan)
            progress.set_done(summary["adapters_done"], names)

        if options.executor == "ray":
            from adaptcommand.training.ray_executor import run_on_ray

            run_on_ray(partial(train_shard, plan), todo, options.workers,
                       on_poll=lambda: on_saved([]))
        else:
            train_shard(plan, todo, on_saved=lambda name: on_saved([name]),
                        on_step=progress.step)
    if uses_profiles(plan.config):
        write_persona_profiles(out_dir, plan_profiles(plan, load_split(plan.data_dir, "train")))
    with contextlib.suppress(OSError):  # every adapter saved: no checkpoint is left
        (out_dir / CHECKPOINTS_DIR).rmdir()
    return write_summary(plan)


def uses_profiles(config: TrainingConfig) -> bool:
    """Whether the run mines its personas' profiles (profile lines or distilled examples)."""
    return config.prompt.profile != "none" or config.data.distill_examples_per_routine > 0


def plan_profiles(plan: RunPlan, train: dict[str, list[Any]]) -> dict[str, UserProfile]:
    """The profiles of the run's personas, mined from their train sessions only (what a
    deployed assistant would know); deterministic, so every worker mines the same."""
    personas = list(dict.fromkeys(p for _, members in plan.groups for p in members))
    return mine_profiles({p: train[p] for p in personas}, MiningSettings())


def checkpoints(plan: RunPlan) -> Checkpoints:
    """The run's epoch-end checkpoints; an adapter's key is the run key and its personas."""
    keys = {name: hashlib.sha256(json.dumps([plan.run_key, list(members)]).encode()).hexdigest()
            for name, members in plan.groups}
    return Checkpoints(plan.out_dir / CHECKPOINTS_DIR, keys)


def train_shard(plan: RunPlan, names: list[str],
                on_saved: Callable[[str], None] | None = None,
                on_step: Callable[[StepReport], None] | None = None) -> None:
    """Load the model once and train `names` with the multi-adapter engine (LoRA) or one
    after another (prefix tuning, training.prefix), saving each."""
    if not names:
        return
    config = plan.config
    loaded = load_model(config.model.name, device=config.model.device, dtype=config.model.dtype,
                        seed=config.seed)
    if config.adapter.method == "prefix":
        peft_model, peft_config = wrap_prefix(loaded.model, loaded.tokenizer, config)
        train: Callable[..., None] = partial(train_prefix_adapters, peft_model,
                                             checkpoints=checkpoints(plan))
    else:
        adapter = config.adapter
        lora = MultiLora(loaded.model, adapter.target_modules, adapter.r, adapter.alpha,
                         adapter.dropout)
        peft_config = lora_config(config, config.model.name)
        train = partial(train_adapters, loaded.model, lora, checkpoints=checkpoints(plan))
    jobs = _jobs(plan, names, loaded.tokenizer,
                 turn_terminator(loaded.tokenizer, loaded.end_of_turn_ids))

    def save(result: AdapterResult) -> None:
        record = {"adapter": result.name, "personas": plan.personas_of(result.name),
                  **result.record(), "run_key": plan.run_key}
        save_adapter(plan.out_dir / result.name, result.state, peft_config, record)
        checkpoints(plan).remove(result.name)
        if on_saved is not None:
            on_saved(result.name)

    train(jobs, config, save, on_step)


def _jobs(plan: RunPlan, names: list[str], tokenizer: Any, end_of_turn_id: int
          ) -> Iterator[AdapterJob]:
    """One job per adapter, its examples built only when the engine asks for it."""
    dialogues, splits = load_dialogues(plan.data_dir), load_splits(plan.data_dir)
    train, val = select_split(dialogues, splits, "train"), select_split(dialogues, splits, "val")
    init_state = load_adapter(plan.init_from, plan.config) if plan.init_from else None
    config = plan.config
    profiles = plan_profiles(plan, train) if uses_profiles(config) else {}
    if config.data.distill_examples_per_routine:
        extra = distilled_for(profiles, train, config.data.distill_examples_per_routine,
                              config.seed)
        train = {p: [*dialogues, *extra.get(p, [])] for p, dialogues in train.items()}

    def session_profile(dialogue: CleanDialogue) -> ProfileText | None:
        return profile_text(config.prompt, profiles.get(dialogue.persona_id), dialogue.meta)

    def known_question(dialogue: CleanDialogue, index: int) -> bool:
        return asks_for_known_settings(dialogue, index, profiles.get(dialogue.persona_id))

    def examples(split: dict[str, list[Any]], personas: list[str]) -> list[Any]:
        return build_examples(tokenizer, [d for p in personas for d in split[p]],
                              end_of_turn_id=end_of_turn_id,
                              system_prompt=config.prompt.system_prompt,
                              max_context_messages=config.prompt.max_context_messages,
                              max_length=config.data.max_length, unit=config.data.example_unit,
                              profiles=session_profile,
                              unlearned=known_question if config.data.skip_known_questions
                              else None)

    for name in names:
        personas = plan.personas_of(name)
        job = AdapterJob(name, examples(train, personas), examples(val, personas), init_state)
        if not job.train:
            raise AdaptCommandError(f"{name}: no assistant turn in its train split "
                                    f"({plan.data_dir / SPLITS_FILE})")
        yield job


def pinned_config_hash(out_dir: Path, config: TrainingConfig, current: str) -> str:
    """The config hash `out_dir`'s manifest pinned when its config, read with today's layout, is
    `config` (a flat config of an earlier version hashed a field its method ignored, e.g.
    num_virtual_tokens of a LoRA run): the run resumes with its adapters. Else `current`."""
    previous = read_manifest(out_dir)
    if previous is None or previous.get("config_hash") in (None, current):
        return current
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            earlier = TrainingConfig.model_validate(previous.get("config", {}))
        except ValidationError:
            return current
    return previous["config_hash"] if config_hash(earlier) == current else current


def build_manifest(strategy: Strategy, config: TrainingConfig, data_dir: Path,
                   init_from: Path | None) -> dict[str, Any]:
    """What this output directory is trained with; CHECKED_FIELDS must match on resume."""
    return {
        "strategy": strategy,
        "base_model": config.model.name,
        "config": config.model_dump(),
        "config_hash": config_hash(config),
        "data_dir": str(data_dir),
        "data_fingerprint": data_fingerprint(data_dir),
        "init_from": str(init_from) if init_from else None,
        "init_fingerprint": file_digest(init_from / WEIGHTS_FILE) if init_from else None,
        # The profiles a run mines are training data too: a changed miner retrains.
        "mining": MiningSettings().model_dump() if uses_profiles(config) else None,
        "package_version": __version__,
        "library_versions": library_versions(),
    }


def remove_stale_temporaries(out_dir: Path) -> None:
    """Drop temp siblings a killed run left (atomic_dir/atomic_path names: `.NAME.*.tmp`)."""
    for entry in out_dir.glob(".*.tmp"):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def finished_records(plan: RunPlan) -> dict[str, dict[str, Any]]:
    """Records of this run's adapters that are on disk and trained with this run's settings
    on the same personas (a group's members change with --personas or the clustering)."""
    records = {}
    for name in plan.adapter_names:
        record = read_record(plan.out_dir / name)
        if (record is not None and record.get("run_key") == plan.run_key
                and record.get("personas") == plan.personas_of(name)):
            records[name] = record
    return records


def write_summary(plan: RunPlan) -> dict[str, Any]:
    """Rebuild `training_summary.json` from the finished adapters' records, atomically."""
    records = finished_records(plan)
    tokens = sum(r["tokens"] for r in records.values())
    seconds = sum(r["seconds"] for r in records.values())
    summary = {
        "strategy": plan.strategy,
        "base_model": plan.config.model.name,
        "adapters_planned": len(plan.adapter_names),
        "adapters_done": len(records),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        "adapters": {name: {k: v for k, v in record.items() if k != "run_key"}
                     for name, record in sorted(records.items())},
    }
    write_json_atomic(plan.out_dir / SUMMARY_FILE, summary)
    return summary
