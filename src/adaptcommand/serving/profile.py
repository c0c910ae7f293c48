"""What `serve` says about the user in the prompt: the profile/context text the adapters were
trained with (`models.profile_prompt.profile_text`, the function training and evaluation use),
from the user's profile.json and the session's context.

The prompt options (profile line on or off, its placement, the context sentence) are read from
the adapters directory's training manifest (`evaluation.training_info.trained_with`), so a
request is rendered exactly like the adapters' training examples; `--prompt-profile line|none`
overrides the profile line. The context is the request's OpenAI `metadata` fields named like a
session's meta (`time_of_day`, `day_of_week`, `sun_phase`, `weather`, `outdoor_temp`; other
metadata keys are the client's own tags and are ignored), else the server clock's time of day and
day of week.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from adaptcommand.config import first_error
from adaptcommand.data.schema import TRIGGER_VALUES, Triggers
from adaptcommand.evaluation.training_info import trained_with
from adaptcommand.models.prompting import ProfileOptions
from adaptcommand.serving.errors import BadRequestError

PromptProfile = Literal["auto", "line", "none"]
CONTEXT_FIELDS = tuple(TRIGGER_VALUES)
PROMPT_PREFIX = "prompt."


def serving_profile_options(adapters_dir: Path, mode: PromptProfile) -> ProfileOptions:
    """The prompt options of the adapters' training run (defaults without a manifest: no
    profile), with the profile line forced on or off unless `mode` is auto."""
    _, overrides = trained_with(adapters_dir)
    options = ProfileOptions.model_validate(
        {key.removeprefix(PROMPT_PREFIX): value for key, value in overrides.items()
         if key.removeprefix(PROMPT_PREFIX) in ProfileOptions.model_fields})
    return options if mode == "auto" else options.model_copy(update={"profile": mode})


def clock_context(now: datetime) -> dict[str, str]:
    """Time of day and day of week of `now` (the fields a clock knows): morning 5-12 h,
    afternoon 12-17 h, evening 17-21 h, night otherwise; Saturday and Sunday are the weekend."""
    hour = now.hour
    time_of_day = ("morning" if 5 <= hour < 12 else "afternoon" if 12 <= hour < 17
                   else "evening" if 17 <= hour < 21 else "night")
    return {"time_of_day": time_of_day,
            "day_of_week": "weekend" if now.weekday() >= 5 else "weekday"}


def session_context(metadata: Mapping[str, str] | None,
                    now: datetime | None = None) -> dict[str, str]:
    """The session's context: the request's metadata fields named like a session's meta (an
    invalid value is a 400 naming the field), the clock's (`now`, default the server's local
    time) time of day and day of week where the request gives none."""
    given = {key: value for key, value in (metadata or {}).items() if key in CONTEXT_FIELDS}
    try:
        Triggers.model_validate(given)
    except ValidationError as exc:
        field, message = first_error(exc)
        raise BadRequestError(f"metadata.{field}: {message}") from None
    return {**clock_context(now or datetime.now()), **given}
