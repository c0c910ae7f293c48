"""The main job end to end: data -> baseline -> training strategies -> evaluation and
preference probe of every arm -> report. Every stage is resumable, so a demo started again
continues where it stopped, and `--all-arms` run after a plain demo only adds the other arms.

The default plan is sized for a 2-core CPU (under 15 minutes with the embedded model); the full
plan is the reference setup (200 x 50 sessions, Qwen2.5-0.5B-Instruct, reference LoRA) for a GPU;
the study plan (`configs/study.json`, `adaptcommand.study`) is every profile arm on enough users
to decide. Which arms exist, and what each trains and reads, is `adaptcommand.arms`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from adaptcommand.arms import ALL_ARMS, ARMS, CORE, Arm, get_arm, resolve_arms
from adaptcommand.arms.arm import COLD_START
from adaptcommand.arms.distilled import DISTILLED_VERSION
from adaptcommand.arms.merged import merge_adapters
from adaptcommand.arms.profile_answer import evaluate_profile_answers
from adaptcommand.data.io import DIALOGUES_FILE
from adaptcommand.data.prepare import prepare_from_source
from adaptcommand.data.splits import SplitConfig
from adaptcommand.data.synth import synthesize
from adaptcommand.data.synth.config import SynthConfig
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.probe import PROBE_PREDICTIONS, run_probe, run_profile_probe
from adaptcommand.evaluation.runs import Scope, evaluate_arm, resolve_config
from adaptcommand.fileio import atomic_path, write_text_atomic
from adaptcommand.models.adapters import UNIFIED
from adaptcommand.models.profile_prompt import KNOWN_QUESTIONS_VERSION
from adaptcommand.report.build import build_report
from adaptcommand.routines.mining import MiningSettings
from adaptcommand.routines.profile import PROFILES_FILE
from adaptcommand.routines.run import mine_data
from adaptcommand.stages import STAGES_FILE, Stage, read_record, run_stages
from adaptcommand.study_summary import (
    STUDY_MD,
    figure_name,
    prompt_tokens,
    study_figure,
    study_markdown,
)
from adaptcommand.training.config import (
    FLAT_KEYS,
    TrainingConfig,
    config_hash,
    flat_keys,
    method_overrides,
)
from adaptcommand.training.recipes import run_training

# The small plan shortens the prompt: on a CPU every prompt token costs training time, and a
# long system prompt would be most of each example.
SHORT_SYSTEM_PROMPT = (
    "You are a smart-home assistant for TV, AC, lights, speaker and security. "
    "State every setting you apply with its value."
)

MERGE_K = 3
# What a hybrid arm takes from the arm it starts from (DemoPlan._start_shape).
ADAPTER_SHAPE = ("adapter.r", "adapter.alpha", "adapter.target_modules")
# The plan fields the data stage reads (DemoPlan.data_fingerprint).
DATA_FIELDS = ("personas", "sessions", "seed", "source", "synth", "cold_start_personas",
               "cold_start_sessions", "cold_start_profile_sessions")
CORE_ARMS = tuple(resolve_arms(CORE))
EXTRA_ARMS = tuple(arm for arm in resolve_arms(ALL_ARMS) if arm not in CORE_ARMS)
__all__ = ["COLD_START", "CORE_ARMS", "EXTRA_ARMS", "Arm", "DemoPlan", "plan_arms", "run_demo"]


@dataclass(frozen=True)
class DemoPlan:
    """Sizes and settings of one demo; `small()` for a CPU, `full()` for the reference."""

    personas: int  # trained users
    sessions: int
    model: str
    training: dict[str, Any]  # dotted TrainingConfig overrides shared by every arm
    evaluation: dict[str, Any]  # dotted EvalConfig overrides
    arm_training: dict[str, dict[str, Any]] = field(default_factory=dict)  # per arm, dotted
    cold_start_personas: int = 0  # new users held out of all training (cold-start arms)
    cold_start_sessions: int = 10  # their sessions after the profile ones, evaluated
    cold_start_profile_sessions: int = 3  # their first sessions: all a new-user arm may read
    seed: int = 0
    source: Path | None = None  # real EdgeWisePersona files instead of synthetic ones
    synth: SynthConfig | None = None  # the generator's knobs (default: SynthConfig())
    arms: tuple[str, ...] | None = None  # registry keys; None: core, or --all-arms
    stage_seconds: dict[str, float] = field(default_factory=dict)  # ETA estimates (stages)
    jobs: int = 1  # stages run at once (stages.run_stages); speed only (benchmarks/stage_jobs.py)

    @classmethod
    def small(cls) -> DemoPlan:
        prompt = {"prompt.system_prompt": SHORT_SYSTEM_PROMPT, "prompt.max_context_messages": 3}
        return cls(
            personas=4,
            sessions=16,
            model="embedded",
            training={"optimizer.epochs": 1, "data.max_length": 256,
                      "early_stopping.patience": None, "optimizer.learning_rate": 1e-3,
                      **prompt},
            # A per-user adapter sees only its own user's sessions: give it a second epoch;
            # a prefix has no base-weight update to lean on, it needs a higher rate.
            arm_training={"per-user": {"optimizer.epochs": 2},
                          "hybrid": {"optimizer.epochs": 2},
                          "prefix-unified": {"optimizer.learning_rate": 1e-2},
                          "prefix-per-user": {"optimizer.epochs": 2,
                                              "optimizer.learning_rate": 1e-2},
                          "cluster": {"cluster.k": 2}},
            cold_start_personas=3,
            cold_start_sessions=4,
            # Evaluate from the second assistant turn on: more turns for the same sessions.
            evaluation={"generation.max_new_tokens": 40, "generation.batch_size": 16,
                        "evaluation.skip_assistant_turns": 1, **prompt},
        )

    @classmethod
    def full(cls, source: Path | None = None, all_arms: bool = False) -> DemoPlan:
        return cls(personas=200, sessions=50, model="Qwen/Qwen2.5-0.5B-Instruct", training={},
                   evaluation={}, cold_start_personas=20 if all_arms else 0, source=source)

    def fingerprint(self) -> str:
        """SHA-256 of everything but the arm list and the ETA estimates, plus the profile
        miner's settings: what stages.json recorded before each stage had its own fingerprint
        (stages.recorded_fingerprints). Training keys count by their place, so a flat key and
        its dotted name agree (hashed in the flat spelling, as plans were before the
        sections)."""
        settings = {k: v for k, v in asdict(self).items()
                    if k not in ("arms", "stage_seconds", "jobs")}
        settings["training"] = flat_keys(self.training)
        settings["arm_training"] = {arm: flat_keys(extra)
                                    for arm, extra in self.arm_training.items()}
        settings["mining"] = MiningSettings().model_dump()
        return _json_sha256(settings)

    def data_fingerprint(self) -> str:
        """The fingerprint of the settings the data stage reads."""
        return digest({key: getattr(self, key) for key in DATA_FIELDS})

    def training_config(self, arm: Arm) -> TrainingConfig:
        """The arm's training config: the plan's shared fields, the arm's prompt options and
        extras, the adapter shape of the arm it starts from, then the plan's per-arm extras."""
        overrides = {"model.name": self.model, "seed": self.seed, "adapter.method": arm.method,
                     **self.training, **arm.training_overrides(), **self._start_shape(arm),
                     **self.arm_training.get(arm.key, {})}
        return TrainingConfig().updated(method_overrides(overrides, arm.method))

    def _start_shape(self, arm: Arm) -> dict[str, Any]:
        """The rank, alpha and modules the arm whose adapter `arm` starts from sets in
        `arm_training` (and its own start): a hybrid run must have its unified adapter's shape
        (training.export.load_adapter), so reshaping the unified arm reshapes the arms on it."""
        if not arm.init_from:
            return {}
        start = get_arm(arm.init_from)
        extras = {FLAT_KEYS.get(key, key): value
                  for key, value in self.arm_training.get(start.key, {}).items()}
        return {**self._start_shape(start),
                **{key: value for key, value in extras.items() if key in ADAPTER_SHAPE}}

    def eval_config(self, arm: Arm) -> EvalConfig:
        """The arm's evaluation config: the plan's overrides, the arm's prompt options (the
        same as its training's) and its split."""
        return resolve_config(None, {"model.name": self.model, **self.evaluation,
                                     **arm.prompt_overrides(), "evaluation.split": arm.split})


def plan_arms(plan: DemoPlan, all_arms: bool) -> list[Arm]:
    """The plan's arms (the core ones, or every demo arm when asked) with the arms they build
    on and each group's baseline, in registry order; cold-start arms only when the plan holds
    new users out."""
    keys = plan.arms if plan.arms is not None else (ALL_ARMS if all_arms else CORE)
    arms = [arm for arm in resolve_arms(keys)
            if arm.split != COLD_START or plan.cold_start_personas]
    baselines = {f"{arm.key.removesuffix(arm.name)}baseline" for arm in arms}
    return resolve_arms([*baselines, *(arm.key for arm in arms)])


def run_path(out: Path, arm: Arm) -> Path:
    return out / "runs" / arm.key


def digest(*parts: Any) -> str:
    """SHA-256 of JSON-able parts (pydantic models by their fields)."""
    return _json_sha256(parts)


def _json_sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def demo_stages(out: Path, plan: DemoPlan, arms: list[Arm], quiet: bool,
                distilled_version: int = DISTILLED_VERSION) -> list[Stage]:
    """Every stage of the plan in order: data, then per arm its adapters (trained or merged),
    the profiles it mines, its evaluation and probe; the report last. Each stage's fingerprint
    covers its own settings and its inputs' fingerprints (the data's, the profile miner's, the
    adapters it starts from, merges or evaluates), so changing one arm's training redoes that
    arm and the arms built on it only. `distilled_version`: of the distilled dialogues that
    trainings with them used (arms.distilled)."""
    data = out / "data"
    scope = Scope(data=data)
    stages = [Stage("data", partial(_prepare_data, out, plan), data / DIALOGUES_FILE,
                    fingerprint=plan.data_fingerprint(), clears=(data, out / "raw"))]
    # what every later stage rests on: the data and the miner (profiles feed training,
    # evaluation and probes)
    root = digest(plan.data_fingerprint(), MiningSettings().model_dump())
    adapters: dict[str, Stage] = {}  # arm key -> the stage that trained or merged its adapters
    mined: set[str] = set()
    for arm in arms:
        trained = _adapter_stage(out, arm, plan, quiet, root, adapters, distilled_version)
        if trained:
            stages.append(trained)
            adapters[arm.key] = trained
        needs = ["data"]
        if arm.profiles_from and not arm.growing:
            needs.append(f"mine {arm.profiles_from}")
            if arm.profiles_from not in mined:
                mined.add(arm.profiles_from)
                profiles = out / "profiles" / arm.profiles_from
                stages.append(Stage(needs[-1], partial(
                    mine_data, data, profiles, split=arm.profiles_from),
                    _profiles_file(out, arm), fingerprint=digest(root, arm.profiles_from),
                    clears=(profiles,), needs=("data",)))
        own = adapters.get(arm.adapters_of or arm.key)
        if own:
            needs.append(own.name)
        stages += _eval_stages(out, arm, plan.eval_config(arm), scope, quiet,
                               digest(root, own.fingerprint if own else None), tuple(needs))
    return stages


def legacy_fingerprints(out: Path, plan: DemoPlan) -> dict[str, str]:
    """Each stage's fingerprint as a stages.json of one plan fingerprint (written before stages
    had their own) knew it: every arm the plan could select, and the distilled dialogues of
    that time (version 1), so their trainings are redone."""
    arms = [arm for arm in ARMS if arm.split != COLD_START or plan.cold_start_personas]
    return {stage.name: stage.fingerprint
            for stage in demo_stages(out, plan, arms, quiet=True, distilled_version=1)}


def _eval_stages(out: Path, arm: Arm, settings: EvalConfig, scope: Scope, quiet: bool,
                 inputs: str, needs: tuple[str, ...]) -> list[Stage]:
    """The arm's evaluation and probe: of its model, or of its mined profile answering alone.
    `inputs`: the fingerprint of what they read (data, miner, adapters); `needs`: the stages
    that write it. The probe also waits for the evaluation, which clears the run directory."""
    run, profiles = run_path(out, arm), _profiles_file(out, arm)
    if arm.language_model:
        adapters = _adapters_dir(out, arm)
        evaluate = partial(evaluate_arm, settings, scope, run, arm.name, adapters=adapters,
                           retrieval_k=arm.retrieval_k, show_progress=not quiet,
                           profiles_file=profiles)
        probe = partial(run_probe, settings, scope, run, arm.name, adapters=adapters,
                        retrieval_k=arm.retrieval_k, show_progress=not quiet,
                        profiles_file=profiles)
    else:
        evaluate = partial(evaluate_profile_answers, settings, scope, run, arm.name,
                           profiles_file=profiles, show_progress=not quiet)
        probe = partial(run_profile_probe, settings, scope, run, profiles, arm=arm.name)
    fingerprint = digest(inputs, settings, arm.profiles_from, arm.retrieval_k,
                         arm.language_model)
    return [Stage(f"eval {arm.key}", evaluate, run / "results.json", fingerprint=fingerprint,
                  clears=(run,), needs=needs),
            Stage(f"probe {arm.key}", probe, run / "probe.json", fingerprint=fingerprint,
                  clears=(run / "probe.json", run / PROBE_PREDICTIONS),
                  needs=(*needs, f"eval {arm.key}"))]


def run_demo(out: Path, plan: DemoPlan, console: Console | None = None,
             all_arms: bool = False, study: bool = False) -> Path:
    """Run every stage into `out` (skipping finished work) and return the report directory.
    `study`: one overall progress line (stage, done/total, ETA) instead of each stage's, and
    the report adds study.md (`adaptcommand.study_summary`). `plan.jobs` > 1 also shows the
    one line, as the stages' own progress bars would interleave."""
    console = console or Console()
    arms = plan_arms(plan, all_arms)
    report_dir = out / "report"
    one_line = study or plan.jobs > 1
    stages = demo_stages(out, plan, arms, quiet=one_line)
    names = [stage.name for stage in stages]
    stages.append(Stage("report", partial(_report, out, plan, arms, study, names),
                        always=True, needs=tuple(names)))
    run_stages(stages, out, console, plan.stage_seconds, one_line=one_line,
               legacy=(plan.fingerprint(), legacy_fingerprints(out, plan)), jobs=plan.jobs)
    return report_dir


def _report(out: Path, plan: DemoPlan, arms: list[Arm], study: bool,
            stage_names: list[str]) -> None:
    files = build_report([run_path(out, arm) for arm in arms], out / "report")
    if not study:
        return
    tokens = {(arm.split, arm.name): prompt_tokens(plan.eval_config(arm), out / "data",
                                                   _adapters_dir(out, arm),
                                                   _profiles_file(out, arm))
              for arm in arms}
    record = read_record(out / STAGES_FILE)
    seconds = sum(record.get("seconds", {}).get(name, 0.0) for name in [*stage_names, "report"])
    header = [
        "# Study: " + ", ".join(arm.key for arm in arms), "",
        f"{plan.personas} trained + {plan.cold_start_personas} new users x {plan.sessions} "
        f"sessions, model {plan.model}; stages so far {seconds / 60:.1f} min, "
        f"{record.get('wall_seconds', seconds) / 60:.1f} min of wall time ({plan.jobs} at "
        f"once); load average at the end {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs).",
        "Cells: value [95% interval over users] (N users); Δ: paired per-persona delta vs the "
        "group's baseline [bootstrap interval] (personas helped / paired); probe: the "
        "preference probe's parameter recall.",
    ]
    # Group names are the split names (test, cold_start), as each group has its own split.
    for comparison in files.comparisons:
        with atomic_path(out / "report" / figure_name(comparison.group)) as tmp:
            tmp.write_bytes(study_figure(comparison))
    write_text_atomic(out / "report" / STUDY_MD,
                      study_markdown(files.comparisons, tokens, header))


def _jsonable(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else str(value)


def _adapters_dir(out: Path, arm: Arm) -> Path | None:
    """Where the arm's adapters live (None for the base model)."""
    if arm.adapters_of:
        return out / "adapters" / arm.adapters_of
    return out / "adapters" / arm.name if (arm.train or arm.merge_from) else None


def _profiles_file(out: Path, arm: Arm) -> Path | None:
    """The profiles an arm without profile-carrying adapters reads (mined from its split)."""
    if not arm.profiles_from or arm.growing:
        return None
    return out / "profiles" / arm.profiles_from / PROFILES_FILE


def _adapter_stage(out: Path, arm: Arm, plan: DemoPlan, quiet: bool, inputs: str,
                   adapters: Mapping[str, Stage], distilled_version: int) -> Stage | None:
    """The stage that trains or merges the arm's own adapters (resuming), if any. `inputs`: the
    fingerprint of the data and miner; `adapters`: the stages of the adapters made before."""
    root = out / "adapters"
    target = root / arm.name
    if arm.adapters_of or not (arm.train or arm.merge_from):
        return None
    if arm.merge_from:
        k = min(MERGE_K, plan.personas)  # 3 similar users, fewer in a tiny test plan
        source = adapters[arm.merge_from]
        return Stage(f"merge {arm.key}", partial(merge_adapters, root / arm.merge_from,
                                                out / "data", target, k=k), target,
                     fingerprint=digest(inputs, source.fingerprint, k), clears=(target,),
                     needs=("data", source.name))
    config = plan.training_config(arm)
    init = root / arm.init_from / UNIFIED if arm.init_from else None
    start = adapters[arm.init_from] if arm.init_from else None
    fingerprint = digest(inputs, arm.train, config_hash(config),
                         start.fingerprint if start else None)
    if config.data.distill_examples_per_routine:
        fingerprint = digest(fingerprint, distilled_version)
    if config.data.skip_known_questions:
        fingerprint = digest(fingerprint, KNOWN_QUESTIONS_VERSION)
    return Stage(f"train {arm.key}", partial(run_training, arm.train, config, out / "data",
                                             target, init_from=init, show_progress=not quiet),
                 target, fingerprint=fingerprint, clears=(target,),
                 needs=("data", start.name) if start else ("data",))


def _prepare_data(out: Path, plan: DemoPlan) -> Path:
    source = plan.source
    if source is None:
        source = out / "raw"
        if not (source / "sessions.jsonl").is_file():
            synthesize(plan.personas + plan.cold_start_personas, plan.sessions, plan.seed,
                       source, config=plan.synth)
    data = out / "data"
    if not (data / DIALOGUES_FILE).is_file():
        prepare_from_source(source, data, SplitConfig(
            cold_start_personas=plan.cold_start_personas,
            cold_start_profile_sessions=plan.cold_start_profile_sessions,
            cold_start_sessions=plan.cold_start_sessions, seed=plan.seed))
    return data

