"""The generator's knobs: how messy its users are.

Real users do not replay their routines verbatim: they change a value for one day, ask for part
of a routine, correct themselves, do other things in a routine's context, and their habits shift.
Each imperfection is one share below; every field is documented with how its default was chosen
(README, "Synthetic data"). `SynthConfig.clean()` turns them off.
"""

from __future__ import annotations

from pydantic import Field

from adaptcommand.config import StrictModel


class SynthConfig(StrictModel):
    """Shares of imperfect behaviour in the generated corpus (each 0..1)."""

    tweak_rate: float = Field(0.15, ge=0.0, le=1.0, description=(
        "Routine sessions in which the user changes one value of the routine for that session "
        "only ('a bit warmer today'). The routine keeps its value; a tweak is always rarer than "
        "the routine's own value."))
    partial_rate: float = Field(0.2, ge=0.0, le=1.0, description=(
        "Routine sessions (of routines with two or more devices) that apply only part of the "
        "routine: one or more of its devices are left out (at least one is kept)."))
    mind_change_rate: float = Field(0.1, ge=0.0, le=1.0, description=(
        "Sessions in which the user first asks for a different value of one setting, has it "
        "applied, then corrects it ('actually, make it 22'): the later value is committed."))
    open_trigger_rate: float = Field(0.02, ge=0.0, le=1.0, description=(
        "Routines whose triggers leave one field open, so sessions in several contexts apply "
        "them (0.02 gives the published 4.98 triggers per routine)."))
    routine_context_spontaneous: float = Field(0.2, ge=0.0, le=1.0, description=(
        "Spontaneous sessions (no routine applied) held in the context of one of the user's "
        "routines; the others are in contexts where no routine of theirs fires."))
    drift_rate: float = Field(0.15, ge=0.0, le=1.0, description=(
        "Routines one of whose values changes for good from some session on (between 15% and "
        "35% into the history, so the training split always sees the new value last). "
        "routines.jsonl holds the current (final) value: the reconstruction target is the "
        "user's routine as it is now."))

    value_free_share: float = Field(0.03, ge=0.0, le=1.0, description=(
        "Routine sessions in which the user states no value ('my usual rainy-evening setup') "
        "and the assistant applies the routine from memory. Not an imperfection but a habit of "
        "the text: none of the 100 real sample sessions is value-free in its first five "
        "messages (0.03 is the upper 95% bound of 0/100); the generator before these knobs used "
        "0.4, which taught models to invent settings."))

    ack_before_report: float = Field(0.3, ge=0.0, le=1.0, description=(
        "Assistant replies that apply settings and open with an acknowledgement ('Sure.', "
        "'Got it.') before the report; the others lead with it ('Setting the AC to 22...'). "
        "Real sample: 36 of 119 applying replies (0.30); the generator before this knob opened "
        "applying and asking replies alike (0.55), so an opening 'Sure.' did not tell a report "
        "from a question."))
    ack_before_question: float = Field(0.8, ge=0.0, le=1.0, description=(
        "Assistant replies that only ask (a clarifying question, no setting applied) and open "
        "with an acknowledgement. Real sample: 64 of 78 (0.82)."))

    @classmethod
    def clean(cls) -> SynthConfig:
        """Every imperfection off (triggers open at the published rate): users who replay
        their routines exactly. The wording habits (`value_free_share`, `ack_*`) stay as set."""
        return cls(tweak_rate=0.0, partial_rate=0.0, mind_change_rate=0.0,
                   routine_context_spontaneous=0.0, drift_rate=0.0)
