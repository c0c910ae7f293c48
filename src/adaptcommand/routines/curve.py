"""Learning curve of the user model: each routine-reconstruction metric against the number of
sessions a method sees (5, 10, 20, all train), for the miner and for a language model.

A point uses each persona's most recent N train sessions (exactly `routines mine
--max-sessions N`); only messages and meta reach either method, and the routines of the data
are read only to score. The LLM is slow on a CPU, so its rows cover the first `llm_personas`
personas, and the miner is scored on those same personas too (the fair comparison) as well as
on all of them. Writes `curve.json` (every row with intervals), `curve.md` and `curve.png`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from adaptcommand.config import StrictModel
from adaptcommand.data.schema import CleanDialogue, Routine
from adaptcommand.errors import AdaptCommandError
from adaptcommand.fileio import atomic_path, write_json_atomic, write_text_atomic
from adaptcommand.routines.llm import LlmSettings
from adaptcommand.routines.mining import MiningSettings

CURVE_JSON = "curve.json"
CURVE_MD = "curve.md"
CURVE_PNG = "curve.png"
SHOWN_METRICS = ("exact_routine", "exact_triggers", "exact_actions", "jaccard",
                 "field_accuracy", "numeric_mae")
METRIC_LABELS = {"exact_routine": "exact routine", "exact_triggers": "exact triggers",
                 "exact_actions": "exact actions", "jaccard": "Jaccard",
                 "field_accuracy": "field accuracy", "numeric_mae": "numeric MAE"}
PUBLISHED = {  # EdgeWisePersona paper, real data, the whole history in one prompt (DATA.md)
    "Gemini-2.5-Flash": {"exact_routine": 0.439, "exact_triggers": 0.944,
                         "exact_actions": 0.454, "jaccard": 0.896},
    "GPT-4o": {"exact_routine": 0.350, "exact_triggers": 0.984, "exact_actions": 0.356,
               "jaccard": 0.854},
    "DeepSeek-V3": {"exact_routine": 0.269, "exact_triggers": 0.585, "exact_actions": 0.319,
                    "jaccard": 0.819},
    "Gemma-3-4B": {"exact_routine": 0.023, "exact_triggers": 0.528, "exact_actions": 0.035,
                   "jaccard": 0.662},
    "Qwen2.5-3B": {"exact_routine": 0.0075, "exact_triggers": 0.773, "exact_actions": 0.010,
                   "jaccard": 0.554},
}
Method = Literal["miner", "llm"]


class CurveSettings(StrictModel):
    """What the curve measures; the defaults fit a 2-core CPU in a few minutes."""

    points: list[int | None] = Field([5, 10, 20, None], description="Sessions used per "
                                     "persona (most recent train sessions); null = all.")
    methods: list[Method] = Field(["miner", "llm"], description="Methods to measure.")
    llm_personas: int = Field(4, ge=1, description="LLM rows (and the matching miner rows) "
                              "use the first this many personas.")
    mining: MiningSettings = Field(default_factory=MiningSettings)
    llm: LlmSettings = Field(default_factory=lambda: LlmSettings(
        max_prompt_tokens=2048, max_routines=6, max_new_tokens=512))
    n_resamples: int = Field(1000, ge=1, description="Persona-bootstrap resamples.")
    seed: int = 0


def recent(dialogues: Mapping[str, Sequence[CleanDialogue]], n: int | None
           ) -> dict[str, list[CleanDialogue]]:
    """Each persona's most recent `n` sessions (all when None)."""
    return {pid: list(sessions if n is None else sessions[-n:])
            for pid, sessions in dialogues.items()}


def mined_routines(dialogues: Mapping[str, Sequence[CleanDialogue]], settings: MiningSettings
                   ) -> dict[str, list[Routine]]:
    """The miner's routines per persona as schema `Routine`s."""
    from adaptcommand.routines.mining import mine_profiles

    return {pid: [r.to_routine() for r in profile.routines]
            for pid, profile in mine_profiles(dialogues, settings).items()}


def curve_rows(
    train: Mapping[str, Sequence[CleanDialogue]],
    truth: Mapping[str, Sequence[Routine]],
    settings: CurveSettings,
    *,
    llm_predict: Callable[[Mapping[str, Sequence[CleanDialogue]]], dict[str, list[dict]]]
    | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One scored row per (method, personas, sessions used). `llm_predict` maps dialogues to
    routine dicts (a loaded model's `predict_with_model`); needed when "llm" is measured."""
    from adaptcommand.routines.scoring import score_routines

    everyone = [pid for pid in train if pid in truth]
    subset = everyone[: settings.llm_personas]
    plans: list[tuple[str, list[str]]] = []
    if "miner" in settings.methods:
        plans.append(("miner", everyone))
        if "llm" in settings.methods and len(subset) < len(everyone):
            plans.append(("miner", subset))
    if "llm" in settings.methods:
        if llm_predict is None:
            raise AdaptCommandError("the llm rows need a model to predict with")
        plans.append(("llm", subset))
    rows = []
    for method, personas in plans:
        for n in settings.points:
            dialogues = recent({pid: train[pid] for pid in personas}, n)
            start = time.perf_counter()
            if method == "miner":
                pred = mined_routines(dialogues, settings.mining)
            else:
                pred = {pid: [Routine.model_validate(r) for r in routines]
                        for pid, routines in llm_predict(dialogues).items()}
            seconds = time.perf_counter() - start
            scores = score_routines(pred, {pid: truth[pid] for pid in personas},
                                    n_resamples=settings.n_resamples, seed=settings.seed)
            row = {"method": method, "sessions": n, "personas": len(personas),
                   "sessions_mean": sum(map(len, dialogues.values())) / len(dialogues),
                   "seconds": seconds, "metrics": scores["metrics"],
                   "confidence_intervals": scores["confidence_intervals"],
                   "counts": scores["counts"]}
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def row_label(row: Mapping[str, Any]) -> str:
    """e.g. `miner, 200 personas` / `llm (embedded), 4 personas`."""
    method = row["method"] if row["method"] == "miner" else f"llm ({row.get('model', '?')})"
    return f"{method}, {row['personas']} personas"


def sessions_label(row: Mapping[str, Any]) -> str:
    return "all train" if row["sessions"] is None else str(row["sessions"])


def curve_table(curve: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the curve table: the published rows (real data) first, then ours."""
    from adaptcommand.report.markdown import fmt

    header = ["method", "data", "sessions used", *(METRIC_LABELS[m] for m in SHOWN_METRICS)]
    rows = [[f"{model} (published)", "real data", "all (50)",
             *(fmt(values.get(m)) for m in SHOWN_METRICS)]
            for model, values in PUBLISHED.items()]
    for row in curve["rows"]:
        mean = f" (mean {row['sessions_mean']:.1f})" if row["sessions"] is None else ""
        rows.append([row_label(row), "ours, synthetic", sessions_label(row) + mean,
                     *(fmt(row["metrics"].get(m)) for m in SHOWN_METRICS)])
    return header, rows


def curve_markdown(curve: Mapping[str, Any]) -> str:
    """curve.md: the table and how it was made."""
    from adaptcommand.report.markdown import markdown_table

    header, rows = curve_table(curve)
    lines = ["# Routine reconstruction: learning curve", "",
             f"Data: `{curve['data']}` (train split, each persona's most recent N sessions). "
             "Published rows: the EdgeWisePersona paper on the real data, whole history in one "
             "prompt.", "", *markdown_table(header, rows), ""]
    return "\n".join(lines)


def curve_plot(curve: Mapping[str, Any]) -> bytes:
    """One panel per metric: value (persona-bootstrap 95% CI) against sessions used, one line
    per method row; the published rows as dotted horizontal lines."""
    from matplotlib.figure import Figure

    from adaptcommand.report.plots import arm_colors, to_png

    series: dict[str, list[dict[str, Any]]] = {}
    for row in curve["rows"]:
        series.setdefault(row_label(row), []).append(row)
    most = max((r["sessions_mean"] for r in curve["rows"]), default=1.0)
    fig = Figure(figsize=(12, 6.5))
    axes = fig.subplots(2, 3).ravel()
    colors = arm_colors(len(series))
    for ax, metric in zip(axes, SHOWN_METRICS, strict=True):
        for color, (label, rows) in zip(colors, series.items(), strict=True):
            points = [(r["sessions"] or r["sessions_mean"], r["metrics"].get(metric),
                       r["confidence_intervals"].get(metric)) for r in rows]
            points = [p for p in points if p[1] is not None]
            if not points:
                continue
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            low = [y - (ci["low"] if ci else y) for _, y, ci in points]
            high = [(ci["high"] if ci else y) - y for _, y, ci in points]
            ax.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, color=color,
                        label=label)
        for model, values in PUBLISHED.items():
            if metric in values:
                ax.axhline(values[metric], color="grey", linestyle=":", linewidth=0.8)
                ax.annotate(model, (most, values[metric]), fontsize=6, color="grey",
                            va="bottom", ha="right")
        ax.set_title(METRIC_LABELS[metric])
        ax.set_xlabel("sessions used")
    axes[0].legend(fontsize=7)
    fig.suptitle("Routine reconstruction against sessions used (dotted: published, real data)")
    fig.tight_layout()
    return to_png(fig)


def run_curve(data_dir: Path, out: Path, settings: CurveSettings | None = None,
              *, show: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Measure the curve on a prepared data directory and write curve.json, curve.md and
    curve.png to `out` (after everything is computed)."""
    from adaptcommand.data.io import load_split
    from adaptcommand.evaluation.probe import load_routines
    from adaptcommand.evaluation.runs import Scope

    settings = settings or CurveSettings()
    train = load_split(data_dir, "train")
    truth = load_routines(Scope(data=Path(data_dir)), "train")
    llm_predict = None
    if "llm" in settings.methods:
        from adaptcommand.models.loading import load_model
        from adaptcommand.routines.llm import predict_with_model

        llm = settings.llm
        loaded = load_model(llm.model, device=llm.device, dtype=llm.dtype, seed=llm.seed)

        def llm_predict(dialogues: Mapping[str, Sequence[CleanDialogue]]
                        ) -> dict[str, list[dict]]:
            return predict_with_model(loaded, dialogues, llm).routines

    def tag(row: dict[str, Any]) -> None:
        if row["method"] == "llm":
            row["model"] = settings.llm.model
        if show is not None:
            show(row)

    rows = curve_rows(train, truth, settings, llm_predict=llm_predict, on_row=tag)
    curve = {"data": str(data_dir), "settings": settings.model_dump(), "rows": rows,
             "published": PUBLISHED}
    png = curve_plot(curve)
    out = Path(out)
    with atomic_path(out / CURVE_PNG) as tmp:
        tmp.write_bytes(png)
    write_text_atomic(out / CURVE_MD, curve_markdown(curve))
    write_json_atomic(out / CURVE_JSON, curve)
    return curve
