"""The training contract: every knob of a training run, in sections, with its reference value.

`configs/lora_training.yaml` (and its JSON twin) holds the reference values; the CLI's
`--set section.key=value` overrides any field. Sections: `model` and `prompt` (shared with the
evaluation config, so adapters are evaluated as they were trained), `adapter` (the method, LoRA or
prefix tuning, with only that method's fields), `optimizer`, `early_stopping`, `data`, `cluster`
and `throughput` (speed only). Configs written before the sections existed (one flat mapping)
still load, with one DeprecationWarning naming each key's new place.

The config hash stored in a run's manifest covers every field that can change the trained weights,
so a resumed run refuses a different config instead of mixing adapters. It is computed on the flat
view of the config, so runs made before the sections existed keep their hash and resume.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from adaptcommand.config import StrictModel, set_dotted
from adaptcommand.errors import AdaptCommandError
from adaptcommand.identity import run_key
from adaptcommand.models.settings import ModelSettings, PromptSettings


class LoraSettings(StrictModel):
    """Low-rank updates of `target_modules`; many adapters share each training step."""

    method: Literal["lora"] = "lora"
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha; the update is scaled by alpha/r.")
    target_modules: list[str] = Field(["q_proj", "v_proj"], min_length=1,
                                      description="Names of the linear layers that get LoRA.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")


class PrefixSettings(StrictModel):
    """PEFT prefix tuning: learned key/values in front of every layer's attention; adapters
    train one at a time."""

    method: Literal["prefix"] = "prefix"
    num_virtual_tokens: int = Field(16, ge=1, description="Prefix length: learned key/value "
                                    "positions per layer.")


AdapterSettings = Annotated[LoraSettings | PrefixSettings, Field(discriminator="method")]
METHODS: dict[str, type[LoraSettings] | type[PrefixSettings]] = {
    "lora": LoraSettings, "prefix": PrefixSettings}


class OptimizerSettings(StrictModel):
    learning_rate: float = Field(5e-4, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW (decoupled) weight decay.")
    lr_scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warm-up (transformers names).")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Fraction of an adapter's planned "
                                "steps spent warming the learning rate up from 0.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Per-adapter gradient-norm "
                                        "clipping; null disables it.")
    epochs: int = Field(5, ge=1, description="Maximum passes over each adapter's train data.")
    batch_size: int = Field(4, ge=1, description="Assistant replies per optimizer step of one "
                            "adapter (a session example counts each of its replies).")


class EarlyStoppingSettings(StrictModel):
    patience: int | None = Field(2, ge=1, description="Stop an adapter after this many epochs "
                                 "without a val-loss improvement; null disables early stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest val-loss decrease that counts as "
                             "an improvement.")


class DataSettings(StrictModel):
    max_length: int = Field(512, ge=8, description="Tokens per example; the prompt is cut from "
                            "the left so the turn being learned is kept.")
    example_unit: Literal["session", "turn"] = Field(
        "session", description="session: one example per session, every assistant reply in "
        "it supervised (each sees exactly the context a per-turn example gives it; turns whose "
        "context window has slid or that exceed max_length get their own example), so early "
        "messages are encoded once, not once per later turn; turn: one example per assistant "
        "turn. Same loss per token and, as batch_size counts replies, the same number of steps "
        "either way; session just feeds about 4x fewer tokens.")
    length_bucket_batches: int = Field(8, ge=1, description="Examples are sorted by length within "
                                       "windows of this many batches to cut padding; 1 = plain "
                                       "shuffled batches.")
    distill_examples_per_routine: int = Field(
        0, ge=0, description="Extra training examples per mined routine of a persona: a "
        "context-only or implicit request answered with the routine's values "
        "(arms.distilled); 0 = none.")
    skip_known_questions: bool = Field(
        False, description="Profile lines only: leave unlearned (in train and val examples) "
        "the replies that ask the user for settings of a device the session's profile line "
        "states settings for (the user's assistant asked because it did not know them; one "
        "given the line should apply them). They stay in later turns' context.")


class ClusterSettings(StrictModel):
    k: int | None = Field(None, ge=2, description="--strategy cluster only: number of behaviour "
                          "clusters K (< the number of personas); null picks the K in 2..8 with "
                          "the best silhouette.")


class ThroughputSettings(StrictModel):
    """How fast a run goes, never what it learns: free to change when a run resumes."""

    adapters_per_step: int | None = Field(None, ge=1, description="Adapters whose batches "
                                          "share one forward/backward pass; null = auto: 8 on "
                                          "a GPU, 1 on a CPU (a CPU is compute-bound at one "
                                          "adapter's batch; there a packed step runs each "
                                          "adapter's rows as their own pass, bit for bit as "
                                          "alone).")
    max_tokens_per_step: int = Field(4096, ge=1, description="Cap on rows x padded length of "
                                     "one packed step (activation memory; fp32 SmolLM2 needs "
                                     "about 1.3 MB per token); one adapter's batch always runs.")
    pack_padding_slack: float = Field(0.1, ge=0, description="Pack another adapter's batch into "
                                      "a step only if that adds at most this fraction of padding "
                                      "over running the batches apart: padding is pure waste on "
                                      "a CPU, while a GPU gains from bigger batches (raise it).")
    eval_batch_size: int = Field(8, ge=1, description="Validation examples per adapter per "
                                 "forward pass.")
    single_epoch_validation: bool = Field(
        False, description="Compute the val loss of one-epoch runs too. With one epoch it "
        "decides nothing (no epoch to pick, nothing to stop early), so by default it is "
        "skipped and recorded as null (13% of a one-epoch run in BENCHMARKS.md).")


class TrainingConfig(StrictModel):
    """Hyper-parameters of one training run (all strategies share them)."""

    model: ModelSettings = ModelSettings()
    adapter: AdapterSettings = LoraSettings()
    optimizer: OptimizerSettings = OptimizerSettings()
    early_stopping: EarlyStoppingSettings = EarlyStoppingSettings()
    data: DataSettings = DataSettings()
    prompt: PromptSettings = PromptSettings()
    cluster: ClusterSettings = ClusterSettings()
    throughput: ThroughputSettings = ThroughputSettings()
    seed: int = Field(0, description="Seeds adapter init, per-adapter shuffling and dropout.")

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        """Accept the flat layout of earlier configs and manifests, and drop the fields of the
        other adapter method where they sit at their defaults (so `--set adapter.method=prefix`
        works on the LoRA reference file)."""
        if not isinstance(data, dict):
            return data
        return _drop_other_method(migrate_flat(data))

    @model_validator(mode="after")
    def _known_questions_need_the_line(self) -> TrainingConfig:
        if self.data.skip_known_questions and self.prompt.profile != "line":
            raise ValueError("data.skip_known_questions needs prompt.profile = line: without "
                             "the line the assistant does not know the settings it asks for")
        return self

    def updated(self, overrides: Mapping[str, Any]) -> TrainingConfig:
        """A validated copy with dotted overrides (`{"optimizer.epochs": 3}`; flat keys warn)."""
        raw = self.model_dump()
        for key, value in dotted_overrides(dict(overrides)).items():
            set_dotted(raw, key, value)
        return TrainingConfig.model_validate(raw)

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> TrainingConfig:
        """pydantic's copy, refusing keys that are not fields (pydantic would set them as stray
        attributes and change nothing, e.g. a flat `epochs`): use `updated` for dotted keys."""
        unknown = sorted(set(update or {}) - set(TrainingConfig.model_fields))
        if unknown:
            raise AdaptCommandError(f"not TrainingConfig fields: {', '.join(unknown)}; use "
                                    "updated({'section.field': value})")
        return super().model_copy(update=update, deep=deep)


# Each flat key of the earlier layout -> its place now (`--set key=value` still takes them).
FLAT_KEYS = {
    **{key: f"model.{field}" for key, field in
       (("model", "name"), ("device", "device"), ("dtype", "dtype"))},
    "method": "adapter.method",
    **{key: f"adapter.{key}" for key in (*LoraSettings.model_fields, "num_virtual_tokens")
       if key != "method"},
    **{key: f"{section}.{key}" for section, model in (
        ("optimizer", OptimizerSettings), ("early_stopping", EarlyStoppingSettings),
        ("data", DataSettings), ("prompt", PromptSettings), ("throughput", ThroughputSettings))
       for key in model.model_fields},
    "clusters": "cluster.k",
}
FLAT_NAMES = {place: key for key, place in FLAT_KEYS.items()}
# Fields added after runs were made: left out of the hash at their defaults, so those runs
# still resume (ProfileOptions' own fields leave every dump at their defaults).
HASHED_WHEN_SET = ("distill_examples_per_routine", "skip_known_questions")


def migrate_flat(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with every flat key moved to its section, warning once about all of them; the
    fields of the method not in use are dropped (the flat layout ignored them)."""
    flat = [key for key in raw if key in FLAT_KEYS and not (key == "model"
                                                            and isinstance(raw[key], dict))]
    if not flat:
        return raw
    warnings.warn("flat training-config keys are deprecated: "
                  + ", ".join(f"{key} -> {FLAT_KEYS[key]}" for key in flat),
                  DeprecationWarning, stacklevel=4)
    nested = {key: value for key, value in raw.items() if key not in flat}
    moved: dict[str, dict[str, Any]] = {}
    for key in flat:
        section, _, field = FLAT_KEYS[key].partition(".")
        moved.setdefault(section, {})[field] = raw[key]
    adapter = moved.get("adapter", {})
    method = METHODS[adapter.get("method", nested.get("adapter", {}).get("method", "lora"))]
    moved["adapter"] = {k: v for k, v in adapter.items() if k in method.model_fields}
    for section, fields in moved.items():
        nested[section] = {**fields, **nested.get(section, {})}
    return nested


def _drop_other_method(raw: dict[str, Any]) -> dict[str, Any]:
    adapter = raw.get("adapter")
    if not isinstance(adapter, dict):
        return raw
    adapter = {"method": "lora", **adapter}  # the default method, as the section's default
    if adapter["method"] not in METHODS:
        return {**raw, "adapter": adapter}
    own = METHODS[adapter["method"]].model_fields
    defaults = {name: field.default for model in METHODS.values()
                for name, field in model.model_fields.items() if name != "method"}
    kept = {k: v for k, v in adapter.items()
            if k in own or k not in defaults or v != defaults[k]}
    return {**raw, "adapter": kept}


def dotted_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """`--set` pairs with flat keys (`epochs=3`) renamed to their place (`optimizer.epochs`),
    warning once, so they land in the sections of a nested config file."""
    old = [key for key in overrides if key in FLAT_KEYS]
    if old:
        warnings.warn("flat training-config keys are deprecated: "
                      + ", ".join(f"{key} -> {FLAT_KEYS[key]}" for key in old),
                      DeprecationWarning, stacklevel=2)
    return {FLAT_KEYS.get(key, key): value for key, value in overrides.items()}


def flat_keys(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`overrides` with dotted keys renamed to their flat names, silently: for identities (a
    plan's fingerprint) that must not depend on the spelling and must not change for plans
    recorded before the sections (as `config_hash` takes the flat view)."""
    return {FLAT_NAMES.get(key, key): value for key, value in overrides.items()}


def method_overrides(overrides: Mapping[str, Any], method: str) -> dict[str, Any]:
    """Dotted overrides shared by runs of several adapter methods (a demo or study plan), for a
    run of `method`: flat keys moved to their place (warning), and the `adapter.` fields that
    only the other methods have left out, as the flat layout ignored them."""
    own = METHODS[method].model_fields
    others = {name for model in METHODS.values() for name in model.model_fields} - set(own)
    return {key: value for key, value in dotted_overrides(dict(overrides)).items()
            if not (key.startswith("adapter.") and key.removeprefix("adapter.") in others)}


def flat_view(config: TrainingConfig) -> dict[str, Any]:
    """The config in the flat layout runs were hashed in before the sections: the other
    method's fields at their defaults, profile options only when set (as they were dumped)."""
    dump = config.model_dump()
    other = {name: field.default for model in METHODS.values()
             for name, field in model.model_fields.items()}
    flat: dict[str, Any] = {"seed": dump["seed"]}
    for key, path in FLAT_KEYS.items():
        section, _, field = path.partition(".")
        if field in dump[section]:
            flat[key] = dump[section][field]
        elif section == "adapter":
            flat[key] = other[field]
    return flat


def config_hash(config: TrainingConfig) -> str:
    """SHA-256 of the fields that shape the trained weights (every section but throughput)."""
    relevant = flat_view(config)
    for name in ThroughputSettings.model_fields:
        del relevant[name]
    for name in HASHED_WHEN_SET:
        if relevant[name] == DataSettings.model_fields[name].default:
            del relevant[name]
    return run_key(relevant)
