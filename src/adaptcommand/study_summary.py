"""The study's docs/results-ready summary (`report/study.md`): one table per group of the
headline numbers, each with its persona-level interval and number of users, and what each arm
cost (train seconds, adapter MiB, prompt tokens its profile/context text adds per turn).

Every number comes from the report's comparisons (the same bootstrap as summary.md) and the runs'
own files; the prompt tokens are counted with the model's tokenizer on the texts evaluation
rendered (`evaluation.runs.turns_and_profile_texts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from adaptcommand.arms.profile import uses_profile_prompt
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.runs import Scope, turns_and_profile_texts
from adaptcommand.report.build import slug
from adaptcommand.report.compare import Comparison, absolute, compare_metric
from adaptcommand.report.markdown import MIB, fmt, fmt_delta, fmt_interval, markdown_table
from adaptcommand.report.plots import arm_metrics
from adaptcommand.report.run_results import Run

STUDY_MD = "study.md"
DISTILLED_PREFIX, PROFILE_PREFIX = "distilled-", "profile+"
# The figure of the study: what only knowledge of the user gives, next to the guards.
FIGURE_METRICS = ("personal_recall_implicit", "personal_recall_explicit", "param_f1",
                  "device_precision")
COLUMNS = ("arm", "users", "personal recall, implicit", "personal recall, explicit",
           "param F1; Δ vs baseline (helped/paired)", "device precision", "probe param recall",
           "train s", "adapters MiB", "prompt tokens/turn")


def prompt_tokens(settings: EvalConfig, data: Path, adapters: Path | None,
                  profiles_file: Path | None) -> float:
    """Mean tokens of the profile/context text per evaluated turn (0 when the prompts carry
    none): what the arm adds to every prompt, counted on the texts evaluation renders."""
    if not uses_profile_prompt(settings):
        return 0.0
    from adaptcommand.models.loading import load_tokenizer

    turns, texts, _ = turns_and_profile_texts(settings, Scope(data=data), adapters,
                                              profiles_file)
    tokenizer = load_tokenizer(settings.model.name)
    counts = [len(tokenizer(t.text, add_special_tokens=False)["input_ids"]) if t else 0
              for t in (texts(turns) if texts else ())]
    return sum(counts) / len(counts) if counts else 0.0


def _metric(run: Run, metric: str) -> str:
    return fmt_interval(**absolute(run, metric)) if metric in run.results.metrics else "n/a"


def _param_f1(comparison: Comparison, run: Run) -> str:
    value = _metric(run, "param_f1")
    if run is comparison.baseline:
        return value
    summary = compare_metric(comparison.baseline, run, "param_f1", comparison.settings).summary
    if summary is None:
        return value
    return (f"{value}; {fmt_delta(summary.mean)} "
            f"({summary.sign_test.helped}/{summary.n_personas})")


def study_rows(comparison: Comparison, tokens: dict[str, float]) -> list[list[str]]:
    """One row per run of the group (baseline first); `tokens` by run label."""
    rows = []
    for run in [comparison.baseline, *(arm.run for arm in comparison.arms)]:
        cost = run.training_cost
        probe = run.probe.metrics.get("param_recall") if run.probe else None
        rows.append([
            run.label, str(run.results.counts.personas),
            _metric(run, "personal_recall_implicit"), _metric(run, "personal_recall_explicit"),
            _param_f1(comparison, run), _metric(run, "device_precision"),
            fmt(probe) if run.probe else "not probed",
            f"{cost.train_seconds:.0f}" if cost and cost.train_seconds is not None else "0",
            f"{cost.adapter_bytes / MIB:.1f} ({cost.n_adapters})" if cost else "0",
            f"{tokens.get(run.label, 0.0):.1f}",
        ])
    return rows


def study_markdown(comparisons: Sequence[Comparison], tokens: dict[tuple[str, str], float],
                   header: Sequence[str]) -> str:
    """study.md: `header` lines, then one table per group; `tokens` by (group, label)."""
    lines = [*header, ""]
    for comparison in comparisons:
        by_label = {label: n for (group, label), n in tokens.items() if group == comparison.group}
        lines += [f"## {comparison.group}", "",
                  *markdown_table(list(COLUMNS), study_rows(comparison, by_label)), "",
                  *tokens_saved(by_label),
                  f"![{comparison.group}: personal-value recall, param F1 and device precision "
                  f"per arm]({figure_name(comparison.group)})", ""]
    return "\n".join(lines)


def tokens_saved(tokens: dict[str, float]) -> list[str]:
    """One line per distilled arm whose profile counterpart (distilled-X -> profile+X: the same
    adapters, taught the profile by examples instead of reading it) ran in the group."""
    lines = []
    for label, own in tokens.items():
        other = label.replace(DISTILLED_PREFIX, PROFILE_PREFIX, 1)
        if label.startswith(DISTILLED_PREFIX) and other in tokens:
            lines += [f"Prompt tokens saved by {label} against {other}: "
                      f"{tokens[other] - own:.1f} per turn.", ""]
    return lines


def study_figure(comparison: Comparison) -> bytes:
    """The group's runs on FIGURE_METRICS with their intervals (the report's arm_metrics plot
    on the study's metrics)."""
    metrics = [m for m in FIGURE_METRICS if m in comparison.baseline.results.metrics]
    settings = comparison.settings.model_copy(update={"metrics": metrics})
    return arm_metrics(replace(comparison, settings=settings))


def figure_name(group: str) -> str:
    return f"study_{slug(group)}.png"
