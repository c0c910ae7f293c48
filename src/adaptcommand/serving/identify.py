"""Who is speaking: the persona whose train user turns are closest in embedding space.

Each persona is a centroid: the normalised mean of the sentence embeddings of its train user
turns. A query (the user turns of one conversation) is embedded the same way and ranked by cosine
against every centroid. Evaluation uses one query per held-out session, all its user turns
together, because that is what the server sees: a request carries the conversation so far.
Centroids are cached as a .npz (no pickles) named by a fingerprint of the data files and the
embedding model, so a changed dataset is never matched against stale centroids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from adaptcommand.data.io import SplitName, load_split
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.errors import DataError
from adaptcommand.evaluation.embeddings import encode, resolve_model_path
from adaptcommand.fileio import atomic_path, write_json_atomic
from adaptcommand.identity import data_fingerprint
from adaptcommand.models.loading import cache_root

QUERY_UNIT = "session"  # one query per held-out session: all of its user turns
TOP_K = 5
LABELLED_AXIS_MAX = 30  # above this many personas the heatmap drops per-row labels


@dataclass(frozen=True)
class Centroids:
    """One unit vector per persona (rows aligned with `persona_ids`)."""

    persona_ids: list[str]
    vectors: np.ndarray

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(n_queries, n_personas) cosine similarities."""
        return queries @ self.vectors.T


def user_texts(dialogue: CleanDialogue) -> list[str]:
    return [m.text for m in dialogue.messages if m.role == "user" and m.text.strip()]


def embed_groups(groups: list[list[str]]) -> np.ndarray:
    """One unit vector per non-empty group of texts: the mean of their unit embeddings, encoded
    in a single pass over all texts."""
    if any(not group for group in groups):
        raise ValueError("every group needs at least one text")
    vectors = encode([text for group in groups for text in group])
    starts = np.cumsum([0] + [len(group) for group in groups[:-1]])
    return _unit(np.add.reduceat(vectors, starts, axis=0))


def build_centroids(train: dict[str, list[CleanDialogue]]) -> Centroids:
    """Centroids of personas that have train user turns, in the data's persona order."""
    turns = {pid: [t for d in dialogues for t in user_texts(d)] for pid, dialogues in train.items()}
    ids = [pid for pid, texts in turns.items() if texts]
    if not ids:
        raise DataError("no user turns in the train split to identify personas from")
    return Centroids(ids, embed_groups([turns[pid] for pid in ids]))


def centroids_key(data_dir: str | Path) -> str:
    """The data's fingerprint salted with the query unit and the embedding model's location:
    the centroids change with any of them."""
    return data_fingerprint(data_dir, salt=f"{QUERY_UNIT}|{resolve_model_path()}")


def load_centroids(data_dir: str | Path, cache_dir: str | Path | None = None) -> Centroids:
    """Train-split centroids of `data_dir`, from the .npz cache when its fingerprint matches."""
    fingerprint = centroids_key(data_dir)
    cache = Path(cache_dir) if cache_dir else cache_root() / "identify"
    path = cache / f"centroids-{fingerprint[:32]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            if str(saved["fingerprint"]) == fingerprint:
                return Centroids([str(i) for i in saved["persona_ids"]], saved["vectors"])
    centroids = build_centroids(load_split(data_dir, "train"))
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, fingerprint=np.array(fingerprint),
                 persona_ids=np.array(centroids.persona_ids), vectors=centroids.vectors)
    return centroids


def identify(centroids: Centroids, texts: list[str], k: int = TOP_K) -> list[tuple[str, float]]:
    """The `k` most likely personas for one conversation's user texts, best first."""
    scores = centroids.scores(embed_groups([texts]))[0]
    best = np.argsort(-scores, kind="stable")[:k]
    return [(centroids.persona_ids[i], float(scores[i])) for i in best]


def evaluate_identification(
    data_dir: str | Path,
    out_dir: str | Path,
    split: SplitName = "test",
    cache_dir: str | Path | None = None,
) -> dict[str, object]:
    """accuracy@1 and @5 over the split's sessions; writes identify.json and confusion.png."""
    centroids = load_centroids(data_dir, cache_dir)
    index = {pid: i for i, pid in enumerate(centroids.persona_ids)}
    truth, groups, skipped = _queries(load_split(data_dir, split).items(), index)
    if not groups:
        raise DataError(f"no {split} sessions with user turns from known personas", path=data_dir)
    scores = centroids.scores(embed_groups(groups))
    true_idx = np.array(truth)
    ranks = (scores > scores[np.arange(len(truth)), true_idx][:, None]).sum(axis=1)
    confusion = np.zeros((len(index), len(index)), dtype=np.int64)
    np.add.at(confusion, (true_idx, scores.argmax(axis=1)), 1)
    out_dir = Path(out_dir)
    report: dict[str, object] = {
        "split": split,
        "query_unit": QUERY_UNIT,
        "n_queries": len(truth),
        "n_personas": len(index),
        "skipped_queries": skipped,
        "accuracy_at_1": float(np.mean(ranks < 1)),
        f"accuracy_at_{TOP_K}": float(np.mean(ranks < TOP_K)),
        "chance_at_1": 1 / len(index),
        "per_persona_accuracy_at_1": _per_persona(centroids.persona_ids, true_idx, ranks),
        "confusion_png": "confusion.png",
        "data_fingerprint": data_fingerprint(data_dir),
    }
    plot_confusion(confusion, centroids.persona_ids, out_dir / "confusion.png",
                   title=f"{split} sessions, accuracy@1 {report['accuracy_at_1']:.3f}")
    write_json_atomic(out_dir / "identify.json", report)
    return report


def plot_confusion(counts: np.ndarray, persona_ids: list[str], path: Path, title: str) -> None:
    """Row-normalised heatmap (true persona rows, predicted columns); ids on the axes only when
    few enough to read, else persona indices."""
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(8, 7), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="share of the true persona's queries")
    unit = " (index)"
    if len(persona_ids) <= LABELLED_AXIS_MAX:
        ticks, unit = range(len(persona_ids)), ""
        ax.set_xticks(ticks, persona_ids, rotation=90, fontsize=7)
        ax.set_yticks(ticks, persona_ids, fontsize=7)
    ax.set(xlabel=f"predicted persona{unit}", ylabel=f"true persona{unit}", title=title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def _queries(
    split: Iterable[tuple[str, list[CleanDialogue]]], index: dict[str, int]
) -> tuple[list[int], list[list[str]], int]:
    """(true persona index, user texts) per session; sessions of personas without a centroid
    or without user turns are counted as skipped."""
    truth: list[int] = []
    groups: list[list[str]] = []
    skipped = 0
    for pid, dialogues in split:
        for dialogue in dialogues:
            texts = user_texts(dialogue)
            if pid not in index or not texts:
                skipped += 1
                continue
            truth.append(index[pid])
            groups.append(texts)
    return truth, groups, skipped


def _per_persona(ids: list[str], true_idx: np.ndarray, ranks: np.ndarray) -> dict[str, float]:
    hits = np.bincount(true_idx, weights=(ranks < 1).astype(float), minlength=len(ids))
    totals = np.bincount(true_idx, minlength=len(ids))
    return {ids[i]: float(hits[i] / totals[i]) for i in range(len(ids)) if totals[i]}


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
