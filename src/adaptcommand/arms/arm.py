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
# New users' profiles mined at evaluation, before each session, from the sessions seen so far
# (their cold_start_profile sessions, then their earlier cold_start ones): profile.source=growing.
GROWING = "growing"


@dataclass(frozen=True)
class Arm:
    """One arm: `train` trains its own adapters (a runner strategy), `merge_from` merges them
    from another arm's per-user adapters, `adapters_of` reuses another arm's adapters; none of
    the three: the base model. `split` picks the users: returning users (test) or held-out new
    users (cold_start), each group compared with its own baseline.

    `prompt` holds the profile options of training and evaluation alike; `training` extra
    dotted TrainingConfig overrides (e.g. distilled examples); `profiles_from` the split whose
    sessions the users' profiles are mined from when the arm's adapters carry none (base model,
    merged adapters, new users): `train` for returning users, `cold_start_profile` for new ones, or
    GROWING for new users' profiles mined before each evaluated session from the sessions seen.
    `language_model` False: no model at all, the mined profile answers every turn
    (`arms.profile_answer`), the recall ceiling of the profile arms.
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
    language_model: bool = True

    @property
    def key(self) -> str:
        """The registry name: the arm's name, prefixed by its split for new users
        (`cold_start/merged`), as its run directory is named."""
        return self.name if self.split == TEST else f"{self.split}/{self.name}"

    @property
    def uses_profile(self) -> bool:
        """Whether the prompts carry the user's profile line."""
        return uses_profile(self.prompt)

    @property
    def growing(self) -> bool:
        """Whether the profile grows with the sessions seen (new users, mined at evaluation)."""
        return self.profiles_from == GROWING

    def _prompt_options(self) -> dict[str, Any]:
        """The prompt options (defaults left out) as dotted overrides of the `prompt` section
        both configs share."""
        return {f"prompt.{k}": v for k, v in self.prompt.model_dump().items()}

    def prompt_overrides(self) -> dict[str, Any]:
        """The arm's prompt options and profile source as dotted EvalConfig overrides."""
        growing = {"profile.source": "growing"} if self.growing else {}
        return {**self._prompt_options(), **growing}

    def training_overrides(self) -> dict[str, Any]:
        """Dotted TrainingConfig overrides of the arm's own training: its prompt options and
        extras."""
        return {**self._prompt_options(), **self.training}

    def reads(self) -> frozenset[str]:
        """The splits the arm reads besides the evaluated turns' own context: training reads
        train (learning) and val (early stopping); memory and mined profiles read their split;
        a merge reads the trained users' train split and the new users' cold_start_profile; a
        growing profile reads cold_start_profile and, for each evaluated session, only the
        cold_start sessions before it (tests/test_growing_profile.py's spy)."""
        found: set[str] = set()
        if self.train or self.adapters_of or self.merge_from:
            found |= {"train", "val"}
        if self.merge_from:
            found.add("cold_start_profile")
        if self.retrieval_k:
            found.add("train")
        if self.profiles_from:
            found.add("cold_start_profile" if self.growing else self.profiles_from)
        return frozenset(found)
