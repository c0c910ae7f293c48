"""The report's figures, rendered to PNG bytes with the Agg canvas (no display, no pyplot state).

Each function takes the computed `Comparison` of one group of runs (or, for the cost-benefit
plot, the all-arms overview) and returns PNG bytes, so the same image is both written next to
the report and embedded in it.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adaptcommand.evaluation.stats import MIN_USERS
from adaptcommand.report.compare import CompareSettings, Comparison, absolute
from adaptcommand.report.overview import OverviewRow

MAX_LABELLED_ROWS = 40  # above this many personas a heatmap names only every n-th row
DPI = 110


def arm_colors(n: int) -> list[tuple[float, ...]]:
    """A fixed colour per arm position (baseline first): tab10 up to 10 arms, tab20 beyond,
    so that the study's 12 test arms do not share colours (tab10 would repeat baseline's)."""
    name, size = ("tab10", 10) if n <= 10 else ("tab20", 20)
    palette = colormaps[name]
    return [palette(i % size) for i in range(n)]


def to_png(fig: Figure) -> bytes:
    """PNG bytes without the software tag, so the output carries no URL and is reproducible."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def lift_metrics(comparison: Comparison, n: int = 3) -> list[str]:
    """The primary metric and the next reported metrics any persona can be paired on."""
    settings = comparison.settings
    paired = [m for m in settings.all_metrics
              if any(arm.metrics[m].deltas for arm in comparison.arms)]
    ordered = [settings.primary_metric] + [m for m in paired if m != settings.primary_metric]
    return ordered[:n]


def lift_distribution(comparison: Comparison) -> bytes:
    """Box plots of per-persona deltas per arm, one panel per metric, with the personas as dots."""
    metrics = lift_metrics(comparison)
    fig = Figure(figsize=(4.2 * len(metrics) + 0.8, 4.6), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colors = arm_colors(len(comparison.arms) + 1)[1:]
    rng = np.random.default_rng(comparison.settings.seed)
    labels = [arm.run.label for arm in comparison.arms]
    for ax, metric in zip(axes, metrics, strict=True):
        data = [list(arm.metrics[metric].deltas.values()) for arm in comparison.arms]
        positions = np.arange(1, len(data) + 1)
        ax.boxplot([d if d else [np.nan] for d in data], positions=positions, widths=0.5,
                   showfliers=False, medianprops={"color": "black"})
        for pos, values, color in zip(positions, data, colors, strict=True):
            jitter = rng.uniform(-0.15, 0.15, len(values))
            ax.scatter(pos + jitter, values, s=10, alpha=0.5, color=color)
        ax.axhline(0, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(positions, labels, rotation=20, ha="right")
        ax.set_title(metric)
        ax.set_ylabel(f"per-persona delta vs {comparison.baseline.label}")
    fig.suptitle("Per-persona lift over the baseline (each dot a persona; above 0 = helped)")
    return to_png(fig)


def baseline_vs_adapted(comparison: Comparison) -> bytes:
    """Per-persona primary metric, baseline (x) against each arm (y); the diagonal is no change."""
    metric = comparison.settings.primary_metric
    base = comparison.baseline.results.per_persona
    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = fig.subplots()
    colors = arm_colors(len(comparison.arms) + 1)[1:]
    everything: list[float] = []
    for arm, color in zip(comparison.arms, colors, strict=True):
        personas = list(arm.metrics[metric].deltas)
        x = [base[p][metric] for p in personas]
        y = [arm.run.results.per_persona[p][metric] for p in personas]
        everything += x + y
        ax.scatter(x, y, s=16, alpha=0.6, color=color, label=f"{arm.run.label} ({len(x)})")
    low, high = (min(everything), max(everything)) if everything else (0.0, 1.0)
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", linestyle="--",
            linewidth=1, label="no change")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{metric}, baseline ({comparison.baseline.label})")
    ax.set_ylabel(f"{metric}, adapted arm")
    ax.set_title(f"Per persona: baseline vs adapted {metric} (above the diagonal = helped)")
    ax.legend(title="arm (personas)", loc="best")
    return to_png(fig)


def heatmap_personas(comparison: Comparison) -> list[str]:
    """Personas of any arm, sorted by mean primary-metric delta over arms (most helped first)."""
    primary = comparison.settings.primary_metric
    personas = list(dict.fromkeys(
        p for arm in comparison.arms for m in arm.metrics.values() for p in m.deltas))

    def mean_primary(persona: str) -> float:
        values = [arm.metrics[primary].deltas[persona] for arm in comparison.arms
                  if persona in arm.metrics[primary].deltas]
        return -float(np.mean(values)) if values else math.inf

    return sorted(personas, key=lambda p: (mean_primary(p), p))


def delta_heatmap(comparison: Comparison) -> bytes:
    """Persona x metric deltas, one panel per arm; grey where a persona cannot be paired."""
    metrics = comparison.settings.all_metrics
    personas = heatmap_personas(comparison)
    grids = [np.array([[arm.metrics[m].deltas.get(p, np.nan) for m in metrics] for p in personas])
             for arm in comparison.arms]
    finite = np.concatenate([np.abs(g[np.isfinite(g)]) for g in grids])
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    height = min(3.0 + 0.16 * len(personas), 14.0)
    width = 1.2 + len(comparison.arms) * (0.45 * len(metrics) + 1.2)
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, len(comparison.arms), squeeze=False, sharey=True)[0]
    step = max(1, math.ceil(len(personas) / MAX_LABELLED_ROWS))
    cmap = colormaps["RdBu"].with_extremes(bad="lightgrey")
    for ax, arm, grid in zip(axes, comparison.arms, grids, strict=True):
        image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap,
                          vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_xticks(range(len(metrics)), metrics, rotation=60, ha="right")
        ax.set_yticks(range(0, len(personas), step), personas[::step], fontsize=7)
        ax.set_title(arm.run.label)
    axes[0].set_ylabel(f"persona ({len(personas)}, most helped on "
                       f"{comparison.settings.primary_metric} first)")
    fig.colorbar(image, ax=list(axes), label="delta vs baseline (blue = helped)", shrink=0.8)
    fig.suptitle("Per-persona deltas by metric")
    return to_png(fig)


def arm_metrics(comparison: Comparison) -> bytes:
    """Absolute metric values of every run, baseline included, with their evaluation CIs."""
    runs = [comparison.baseline] + [arm.run for arm in comparison.arms]
    metrics = comparison.settings.metrics
    width = 0.8 / len(runs)
    fig = Figure(figsize=(min(16.0, 3.0 + len(metrics) * (0.3 + 0.18 * len(runs))), 4.8),
                 layout="constrained")
    ax = fig.subplots()
    centers = np.arange(len(metrics))
    for i, (run, color) in enumerate(zip(runs, arm_colors(len(runs)), strict=True)):
        values = [absolute(run, m) for m in metrics]
        heights = np.array([np.nan if v["estimate"] is None else v["estimate"] for v in values])
        errors = np.array([[_gap(v["estimate"], v["low"]), _gap(v["high"], v["estimate"])]
                           for v in values]).T
        ax.bar(centers + (i - (len(runs) - 1) / 2) * width, heights, width, yerr=errors,
               capsize=3, color=color, label=run.label)
    ax.set_xticks(centers, metrics, rotation=25, ha="right")
    ax.set_ylabel("value (error bar: persona+session bootstrap CI;\nnone below "
                  f"{MIN_USERS} users)")
    ax.set_title("Metrics per arm (missing bar: undefined, e.g. nothing predicted)")
    ax.legend(title="arm", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_png(fig)


def _gap(upper: float | None, lower: float | None) -> float:
    """Error-bar length; 0 where the interval is unknown."""
    return 0.0 if upper is None or lower is None else max(0.0, upper - lower)


def cost_benefit(rows: list[OverviewRow], settings: CompareSettings) -> bytes:
    """Training seconds (x; symlog, so arms that trained nothing sit at 0) against the mean
    primary-metric delta over the arm's own group baseline (y, paired-bootstrap CI), one
    labelled point per arm, coloured by group."""
    groups = list(dict.fromkeys(row.group for row in rows))
    colors = arm_colors(len(groups))
    fig = Figure(figsize=(8.0, 5.4), layout="constrained")
    ax = fig.subplots()
    left_out, most = [], 1.0
    for row in rows:
        summary = row.primary(settings)
        seconds = row.cost.train_seconds if row.cost else None
        if row.arm is None:
            continue
        if summary is None or seconds is None:
            left_out.append(row.run.label)
            continue
        mean, color, most = summary.mean, colors[groups.index(row.group)], max(most, seconds)
        yerr = (None if mean.low is None or mean.high is None  # too few users: no interval
                else [[mean.estimate - mean.low], [mean.high - mean.estimate]])
        ax.errorbar([seconds], [mean.estimate], yerr=yerr, fmt="o", capsize=4, color=color,
                    label=row.group)
        ax.annotate(row.run.label, (seconds, mean.estimate), xytext=(6, 4),
                    textcoords="offset points", fontsize=8)
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(-0.5, most * 4)  # room right of the costliest arm for its label
    ax.set_xlabel("training seconds (symlog; 0 = nothing trained)")
    ax.set_ylabel(f"mean per-persona Δ {settings.primary_metric} vs group baseline")
    ax.set_title(f"Cost vs benefit ({settings.confidence:.0%} CI, none below {MIN_USERS} users; "
                 "above 0 = better than baseline)")
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    if handles:
        ax.legend(handles.values(), handles.keys(), title="group", loc="best")
    if left_out:
        fig.text(0.01, 0.005, "not shown (no training seconds or no paired persona): "
                 + ", ".join(left_out), fontsize=7, color="#555")
    return to_png(fig)


FIGURES = {
    "lift_distribution.png": ("Per-persona lift distribution", lift_distribution),
    "baseline_vs_adapted.png": ("Baseline vs adapted, per persona", baseline_vs_adapted),
    "delta_heatmap.png": ("Persona x metric deltas", delta_heatmap),
    "arm_metrics.png": ("Metrics per arm with confidence intervals", arm_metrics),
}


def render_figures(comparison: Comparison) -> dict[str, tuple[str, bytes]]:
    """{file name: (caption, PNG bytes)} for every figure of the report."""
    return {name: (caption, draw(comparison)) for name, (caption, draw) in FIGURES.items()}
