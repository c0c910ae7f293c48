"""One arm of the comparison: where its adapters come from, what its prompts carry, and which
splits it may read.

An arm states its prompt options (`prompt`: profile line, context sentence, placement) once;
the demo gives the same options to training and to evaluation, so an adapter is evaluated with
exactly the prompt function it was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from adaptcommand.models.profile_prompt import uses_profile
from adaptcommand.models.prompting import ProfileOptions

Group = Literal["core", "memory", "clusters", "prefix", "profile", "cold-start"]
GROUPS: tuple[Group, ...] = ("core", "memory", "clusters", "prefix", "profile", "cold-start")
TEST = "test"
COLD_START = "cold_start"


@dataclass(frozen=True)
class Arm:
    """One arm: `train` trains its own adapters (a runner strategy), `merge_from` merges them
    from another arm's per-user adapters, `adapters_of` reuses another arm's adapters; none of
    the three: the base model. `split` picks the users: returning users (test) or held-out new
    users (cold_start), each group compared with its own baseline.

    `prompt` holds the profile options of training and evaluation alike; `training` extra
    TrainingConfig fields (e.g. distilled examples); `profiles_from` the split whose sessions
    the users' profiles are mined from when the arm's adapters carry none (base model, merged
    adapters, new users): `train` for returning users, `cold_start_profile` for new ones.
    """

    name: str
    description: str = ""
    group: Group = "core"
    train: str | None = None
    method: str = "lora"
    init_from: str | None = None  # arm whose unified adapter a hybrid run starts from
    merge_from: str | None = None
    adapters_of: str | None = None
    retrieval_k: int = 0
    split: str = TEST
    prompt: ProfileOptions = field(default_factory=ProfileOptions)
    training: Mapping[str, Any] = field(default_factory=dict)
    profiles_from: str | None = None

    @property
    def key(self) -> str:
        """The registry name: the arm's name, prefixed by its split for new users
        (`cold_start/merged`), as its run directory is named."""
        return self.name if self.split == TEST else f"{self.split}/{self.name}"

    @property
    def uses_profile(self) -> bool:
        """Whether the prompts carry the user's profile line."""
        return uses_profile(self.prompt)

    def prompt_overrides(self) -> dict[str, Any]:
        """The arm's prompt options as dotted EvalConfig overrides (defaults left out)."""
        return {f"prompt.{k}": v for k, v in self.prompt.model_dump().items()}

    def training_overrides(self) -> dict[str, Any]:
        """TrainingConfig fields of the arm's own training: its prompt options and extras."""
        return {**self.prompt.model_dump(), **self.training}

    def reads(self) -> frozenset[str]:
        """The splits the arm reads besides the evaluated turns' own context: training reads
        train (learning) and val (early stopping); memory and mined profiles read their split;
        a merge reads the trained users' train split and the new users' cold_start_profile."""
        found: set[str] = set()
        if self.train or self.adapters_of or self.merge_from:
            found |= {"train", "val"}
        if self.merge_from:
            found.add("cold_start_profile")
        if self.retrieval_k:
            found.add("train")
        if self.profiles_from:
            found.add(self.profiles_from)
        return frozenset(found)
