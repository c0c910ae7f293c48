"""`data prepare`: read, clean, split, validate, then write the four output files.

Everything is read and checked before the first byte is written, so bad input leaves --out as it
was; a new --out directory appears only once complete. Outputs carry no timestamps or paths: the
same input gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adaptcommand.data.cleaning import CleaningResult, clean_dialogues
from adaptcommand.data.io import (
    COLD_START_SPLITS,
    DIALOGUES_FILE,
    SPLIT_NAMES,
    SPLITS_FILE,
    read_dialogues_file,
    read_source_layout,
)
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.data.splits import SplitConfig, compute_splits, split_stats
from adaptcommand.data.validation import validate_splits, validation_report
from adaptcommand.errors import DataError
from adaptcommand.fileio import atomic_dir, write_json_atomic, write_jsonl_atomic

STATS_FILE = "split_stats.json"
REPORT_FILE = "validation_report.json"
OUTPUT_FILES = (DIALOGUES_FILE, SPLITS_FILE, STATS_FILE, REPORT_FILE)


@dataclass(frozen=True)
class PrepareSummary:
    """What a prepare run did, for the CLI's summary and for callers that chain stages."""

    out: Path
    sessions_read: int
    sessions_kept: int
    dropped_by_reason: dict[str, int]
    split_sizes: dict[str, int]
    validation_passed: bool
    failed_checks: list[str]
    warnings: list[str]

    @property
    def files(self) -> list[Path]:
        return [self.out / name for name in OUTPUT_FILES]


def prepare_from_source(
    source: str | Path, out: str | Path, split: SplitConfig | None = None
) -> PrepareSummary:
    """Prepare from the three-file EdgeWisePersona layout in `source`."""
    return _prepare(read_source_layout(source), Path(source), Path(out), split or SplitConfig())


def prepare_from_dialogues(
    file: str | Path, out: str | Path, split: SplitConfig | None = None
) -> PrepareSummary:
    """Prepare from an already-cleaned dialogue JSONL (file order = time order per persona)."""
    return _prepare(read_dialogues_file(file), Path(file), Path(out), split or SplitConfig())


def dialogue_record(dialogue: CleanDialogue) -> dict[str, object]:
    """One line of `dialogs_clean.jsonl`: unset fields (None) are left out, at every depth, so
    routines appear in the schema's compact form and a spontaneous session has no
    `applied_routines` key."""
    return dialogue.model_dump(exclude_none=True)


def _prepare(
    dialogues: Sequence[CleanDialogue], origin: Path, out: Path, config: SplitConfig
) -> PrepareSummary:
    if out.exists() and not out.is_dir():
        raise DataError("output path exists and is not a directory", path=out)
    cleaning = clean_dialogues(dialogues)
    if not cleaning.kept:
        raise DataError(
            f"no session left after cleaning (dropped: {cleaning.dropped})", path=origin
        )
    splits = compute_splits(cleaning.kept, config)
    checks = validate_splits(cleaning.kept, splits, config)
    report = validation_report(cleaning, checks)
    stats = split_stats(cleaning.kept, splits, config)
    _write_outputs(out, cleaning, splits, stats, report)
    return PrepareSummary(
        out=out,
        sessions_read=cleaning.sessions_read,
        sessions_kept=len(cleaning.kept),
        dropped_by_reason=dict(cleaning.dropped),
        split_sizes=_split_sizes(splits),
        validation_passed=bool(report["passed"]),
        failed_checks=[check.name for check in checks if not check.passed],
        warnings=[warning for check in checks for warning in check.warnings],
    )


def _split_sizes(splits: dict[str, dict[str, list[int]]]) -> dict[str, int]:
    """Sessions per split; the cold-start splits only when personas are held out."""
    sizes = {name: sum(len(e.get(name, [])) for e in splits.values()) for name in SPLIT_NAMES}
    if not any(sizes[name] for name in COLD_START_SPLITS):
        for name in COLD_START_SPLITS:
            del sizes[name]
    return sizes


def _write_outputs(
    out: Path,
    cleaning: CleaningResult,
    splits: dict[str, dict[str, list[int]]],
    stats: dict[str, object],
    report: dict[str, object],
) -> None:
    """Each file is written atomically; a new `out` appears only with all four inside."""

    def write_all(directory: Path) -> None:
        write_jsonl_atomic(directory / DIALOGUES_FILE, map(dialogue_record, cleaning.kept))
        write_json_atomic(directory / SPLITS_FILE, splits)
        write_json_atomic(directory / STATS_FILE, stats)
        write_json_atomic(directory / REPORT_FILE, report)

    if out.is_dir():
        write_all(out)
        return
    with atomic_dir(out) as staging:
        write_all(staging)
