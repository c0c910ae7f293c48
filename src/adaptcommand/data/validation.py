"""Checks on a split file against its dialogues: the guarantees later stages rely on.

Each check returns errors (a guarantee is broken) and warnings (true but worth knowing, such as a
persona too thin to have a val split). The checks take any splits, not only computed ones, so a
hand-edited `edgesplits.json` can be checked the same way.

A persona with a non-empty `cold_start_profile` or `cold_start` split is held out: it must have
nothing in train, val or test, its profile sessions come before its evaluated ones and never
overlap them, and its sessions after the cold-start ones are unused on purpose. The other checks
skip held-out personas; `cold_start` (only run when personas are held out) checks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from adaptcommand.data.cleaning import CleaningResult
from adaptcommand.data.io import COLD_START_SPLITS
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.data.splits import MIN_SESSIONS_TO_SPLIT, SplitConfig

Splits = dict[str, dict[str, list[int]]]
DISJOINT = ("train", "val", "test")
ORDERED = (*DISJOINT, *COLD_START_SPLITS)  # pairwise disjoint, each before the next in time
# Overall share of each split may drift this far from its ratio before a warning (rounding
# per persona adds up when personas have few sessions).
BALANCE_TOLERANCE = 0.05


@dataclass(frozen=True)
class Check:
    name: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "passed": self.passed,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def validate_splits(
    dialogues: Sequence[CleanDialogue], splits: Splits, config: SplitConfig
) -> list[Check]:
    """Run every check, in the order they appear in the report (`cold_start` last, and only
    when personas are held out or the config asks for some)."""
    checks = [
        check_indices(dialogues, splits),
        check_no_overlap(splits),
        check_coverage(splits),
        check_balance(splits, config),
        check_temporal_order(splits),
    ]
    if config.cold_start_personas or held_out(splits):
        checks.append(check_cold_start(dialogues, splits, config))
    return checks


def held_out(splits: Splits) -> set[str]:
    """Personas held out of training: those with a non-empty cold-start split."""
    return {pid for pid, entry in splits.items()
            if any(entry.get(name) for name in COLD_START_SPLITS)}


def validation_report(cleaning: CleaningResult, checks: list[Check]) -> dict[str, object]:
    """The content of `validation_report.json`; `passed` ignores warnings."""
    return {
        "passed": all(check.passed for check in checks),
        "cleaning": cleaning.counts(),
        "checks": [check.to_dict() for check in checks],
    }


def check_indices(dialogues: Sequence[CleanDialogue], splits: Splits) -> Check:
    """Indices are in range, point at the persona's own sessions, and cover every line (except
    the deliberately unused later sessions of held-out personas)."""
    check = Check("indices_valid")
    unused = held_out(splits)
    assigned = {i for i, dialogue in enumerate(dialogues) if dialogue.persona_id in unused}
    for pid, entry in splits.items():
        for name, indices in entry.items():
            for index in indices:
                if not 0 <= index < len(dialogues):
                    check.errors.append(f"{pid}.{name}: index {index} out of range")
                elif dialogues[index].persona_id != pid:
                    check.errors.append(
                        f"{pid}.{name}: index {index} belongs to {dialogues[index].persona_id}"
                    )
        assigned.update(i for name in DISJOINT for i in entry[name])
    unassigned = sorted(set(range(len(dialogues))) - assigned)
    if unassigned:
        check.errors.append(f"{len(unassigned)} sessions in no split, first index {unassigned[0]}")
    return check


def check_no_overlap(splits: Splits) -> Check:
    """No session is in two of train/val/test/cold_start_profile/cold_start (within or across
    personas)."""
    check = Check("no_overlap")
    owner: dict[int, str] = {}
    for pid, entry in splits.items():
        for name in ORDERED:
            for index in entry.get(name, []):
                where = f"{pid}.{name}"
                if index in owner:
                    check.errors.append(f"index {index} in both {owner[index]} and {where}")
                else:
                    owner[index] = where
    return check


def check_coverage(splits: Splits) -> Check:
    """Every persona has sessions in train, val and test.

    A persona with fewer than MIN_SESSIONS_TO_SPLIT sessions cannot, so thin personas are
    collected into one warning instead of failing the check.
    """
    check = Check("coverage")
    thin: list[str] = []
    skipped = held_out(splits)
    for pid, entry in splits.items():
        if pid in skipped:
            continue
        n_sessions = sum(len(entry[name]) for name in DISJOINT)
        missing = [name for name in DISJOINT if not entry[name]]
        if missing and n_sessions < MIN_SESSIONS_TO_SPLIT:
            thin.append(pid)
        elif missing:
            check.errors.append(f"{pid}: no {'/'.join(missing)} session ({n_sessions} in all)")
    if thin:
        shown = ", ".join(thin[:10]) + (f" and {len(thin) - 10} more" if len(thin) > 10 else "")
        check.warnings.append(
            f"{len(thin)} personas have fewer than {MIN_SESSIONS_TO_SPLIT} sessions, so val "
            f"and/or test are empty for them: {shown}"
        )
    return check


def check_balance(splits: Splits, config: SplitConfig) -> Check:
    """Each persona's split sizes are within one session of n * ratio (rounding); the overall
    shares within BALANCE_TOLERANCE of the ratios, else a warning. Thin personas are left out."""
    check = Check("balance")
    ratios = {"train": config.train_ratio, "val": config.val_ratio, "test": config.test_ratio}
    totals = dict.fromkeys(DISJOINT, 0)
    for pid, entry in splits.items():
        n_sessions = sum(len(entry[name]) for name in DISJOINT)
        if n_sessions < MIN_SESSIONS_TO_SPLIT:
            continue
        for name in DISJOINT:
            totals[name] += len(entry[name])
            expected = n_sessions * ratios[name]
            if abs(len(entry[name]) - expected) > 1:
                check.errors.append(
                    f"{pid}.{name}: {len(entry[name])} sessions, expected about {expected:.1f}"
                )
    grand_total = sum(totals.values())
    if not grand_total:
        check.warnings.append(f"no persona has {MIN_SESSIONS_TO_SPLIT} or more sessions to split")
        return check
    for name in DISJOINT:
        share = totals[name] / grand_total
        if abs(share - ratios[name]) > BALANCE_TOLERANCE:
            check.warnings.append(f"{name}: {share:.3f} of sessions, configured {ratios[name]:.3f}")
    return check


def check_cold_start(
    dialogues: Sequence[CleanDialogue], splits: Splits, config: SplitConfig
) -> Check:
    """`cold_start_personas` personas are held out; each has no session in train, val or test,
    its cold_start_profile split is its first `cold_start_profile_sessions` sessions and its
    cold_start split the next `cold_start_sessions`, in time order."""
    check = Check("cold_start")
    personas = held_out(splits)
    if len(personas) != config.cold_start_personas:
        check.errors.append(f"{len(personas)} personas held out, configured "
                            f"{config.cold_start_personas}")
    sessions: dict[str, list[int]] = {}
    for index, dialogue in enumerate(dialogues):
        sessions.setdefault(dialogue.persona_id, []).append(index)
    for pid in sorted(personas):
        entry = splits[pid]
        used = [name for name in DISJOINT if entry[name]]
        if used:
            check.errors.append(f"{pid}: held out for cold start but has {'/'.join(used)} "
                                "sessions")
        own = sessions.get(pid, [])
        profile_end = config.cold_start_profile_sessions
        profile = own[:profile_end]
        evaluated = own[profile_end : profile_end + config.cold_start_sessions]
        if entry.get("cold_start_profile", []) != profile:
            check.errors.append(f"{pid}.cold_start_profile: not its first {len(profile)} "
                                "sessions in time order")
        if entry.get("cold_start", []) != evaluated:
            check.errors.append(f"{pid}.cold_start: not the {len(evaluated)} sessions after its "
                                "profile sessions in time order")
        elif not evaluated:
            check.warnings.append(f"{pid}: no session left to evaluate after its "
                                  f"{len(profile)} profile sessions")
    return check


def check_temporal_order(splits: Splits) -> Check:
    """Within a persona all train precede all val precede all test, and all cold_start_profile
    precede all cold_start (a new user's profile is what came before the evaluated sessions).

    Line order within a persona is time order, so indices compare times.
    """
    check = Check("temporal_order")
    for pid, entry in splits.items():
        ordered = [(name, entry[name]) for name in ORDERED if entry.get(name)]
        for (early, early_idx), (late, late_idx) in zip(ordered, ordered[1:], strict=False):
            if max(early_idx) >= min(late_idx):
                check.errors.append(f"{pid}: a {early} session is not before every {late} session")
    return check
