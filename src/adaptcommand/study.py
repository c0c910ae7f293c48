"""The study plan (`configs/study.json`): every profile arm next to the core ones, on enough
users to decide, as a `DemoPlan` that `adaptcommand demo --study` runs.

The file is validated whole before anything runs: unknown keys, unknown arms, training fields
TrainingConfig refuses and evaluation overrides EvalConfig refuses all stop with the file and
field named. Its sizes and the measured stage times it was sized from are in
docs/results/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from adaptcommand.arms import REGISTRY, resolve_arms
from adaptcommand.config import StrictModel, first_error, load_config
from adaptcommand.data.synth.config import SynthConfig
from adaptcommand.demo import DemoPlan
from adaptcommand.errors import DataError
from adaptcommand.training.config import FLAT_KEYS

DEFAULT_STUDY = Path("configs/study.json")


class StudyConfig(StrictModel):
    """What `demo --study` runs; each field maps onto `DemoPlan`."""

    description: str = Field("", description="What the study is for (free text).")
    personas: int = Field(ge=1, description="Trained users.")
    cold_start_personas: int = Field(0, ge=0, description="New users held out of training.")
    sessions: int = Field(ge=3, description="Sessions per user (split 60/20/20 by time).")
    cold_start_profile_sessions: int = Field(3, ge=1, description="A new user's first "
                                             "sessions: all new-user arms may read.")
    cold_start_sessions: int = Field(10, ge=1, description="A new user's evaluated sessions.")
    model: str = Field("embedded", description="Base model (as `train --model`).")
    seed: int = 0
    synth: SynthConfig = Field(default_factory=SynthConfig, description="Generator knobs "
                               "(data.synth.config), e.g. value_free_share for implicit turns.")
    training: dict[str, Any] = Field(default_factory=dict, description="Dotted TrainingConfig "
                                     "overrides shared by every trained arm (`optimizer.epochs`; "
                                     "flat keys of earlier versions warn).")
    arm_training: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Per-arm "
                                                    "dotted TrainingConfig overrides, by arm name.")
    evaluation: dict[str, Any] = Field(default_factory=dict, description="Dotted EvalConfig "
                                       "overrides shared by every arm.")
    arms: list[str] = Field(min_length=1, description="Registry names of the arms "
                            "(`adaptcommand demo --list-arms`); the arms they build on are added.")
    stage_seconds: dict[str, float] = Field(default_factory=dict, description="Expected "
                                            "seconds per stage-name prefix (ETA only).")
    jobs: int = Field(1, ge=1, description="Stages run at once, each in its own process with "
                      "its share of the threads (`demo --jobs` overrides; speed only).")

    def plan(self) -> DemoPlan:
        return DemoPlan(
            personas=self.personas, sessions=self.sessions, model=self.model,
            training=self.training, evaluation=self.evaluation, arm_training=self.arm_training,
            cold_start_personas=self.cold_start_personas,
            cold_start_sessions=self.cold_start_sessions,
            cold_start_profile_sessions=self.cold_start_profile_sessions, seed=self.seed,
            synth=self.synth, arms=tuple(self.arms), stage_seconds=self.stage_seconds,
            jobs=self.jobs)


def load_study(path: Path = DEFAULT_STUDY) -> DemoPlan:
    """The study plan of `path`, checked whole (errors name the file and the field)."""
    study = load_config(path, StudyConfig)
    for field, keys in (("arms", study.arms), ("arm_training", list(study.arm_training))):
        for key in keys:
            if key not in REGISTRY:
                raise DataError(f"unknown arm {key!r} (see `adaptcommand demo --list-arms`)",
                                path=path, field=f"{field}.{key}")
    plan = study.plan()
    arms = resolve_arms(study.arms)
    for key in set(study.arm_training) - {arm.key for arm in arms}:
        raise DataError(f"arm {key!r} is not in the study's arms: its training is never used",
                        path=path, field=f"arm_training.{key}")
    for arm in arms:
        _check(path, "evaluation", partial(plan.eval_config, arm))
        seen = plan.eval_config(arm).profile.min_seen_sessions
        if arm.growing and study.cold_start_profile_sessions < seen:
            # Else the growing arms would skip early sessions the other new-user arms score.
            raise DataError(f"a growing profile evaluates a session after {seen} seen ones; "
                            f"give at least {seen} profile sessions",
                            path=path, field="cold_start_profile_sessions")
        if arm.train:
            own = {FLAT_KEYS.get(key, key) for key in study.arm_training.get(arm.key, {})}
            _check(path, "training", partial(plan.training_config, arm),
                   {key: f"arm_training.{arm.key}" for key in own})
    return plan


def _check(path: Path, where: str, build: Callable[[], Any],
           places: Mapping[str, str] | None = None) -> None:
    """Build a config; a refused field is named where it is set: `places` (an arm's own
    extras), else `where`."""
    try:
        build()
    except ValidationError as exc:
        field, message = first_error(exc)
        places = places or {}
        owners = [key for key in places if field == key or field.startswith(key + ".")]
        place = places[max(owners, key=len)] if owners else where
        raise DataError(message, path=path, field=f"{place}.{field}") from None
