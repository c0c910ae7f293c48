"""Surface text metrics of predicted assistant turns: ROUGE overlap and response length.

ROUGE comes from Google's `rouge-score` (the reference implementation) with Porter stemming, so
"lights"/"light" match; length statistics reveal models that ramble or answer too curtly.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from rouge_score import rouge_scorer

from adaptcommand.evaluation.stats import distribution_summary

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    """One scorer per process: building it loads the stemmer and tokenizer."""
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def check_aligned(predictions: Sequence[str], references: Sequence[str]) -> None:
    """Metrics pair prediction i with reference i, so the lists must line up."""
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} references; they must pair up"
        )


def rouge_scores(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """ROUGE-1/2/L F1 for each (prediction, reference) pair."""
    check_aligned(predictions, references)
    scorer = _scorer()
    return [
        {name: float(score.fmeasure) for name, score in scorer.score(ref, pred).items()}
        for pred, ref in zip(predictions, references, strict=True)
    ]


def length_stats(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """Word and character counts of each pair, and the prediction/reference word ratio.

    An empty reference counts as one word in the ratio, so it stays finite.
    """
    check_aligned(predictions, references)
    rows = []
    for pred, ref in zip(predictions, references, strict=True):
        pred_words, ref_words = len(pred.split()), len(ref.split())
        rows.append(
            {
                "pred_words": float(pred_words),
                "ref_words": float(ref_words),
                "pred_chars": float(len(pred)),
                "ref_chars": float(len(ref)),
                "word_ratio": pred_words / max(ref_words, 1),
            }
        )
    return rows


def summarize(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, median and p90 of every field of per-turn metric rows (ROUGE or length)."""
    if not rows:
        raise ValueError("no rows to summarize")
    return {field: distribution_summary([row[field] for row in rows]) for field in rows[0]}
